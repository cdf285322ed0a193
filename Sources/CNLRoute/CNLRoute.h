// libnl-route-3: the rtnetlink objects (links, addresses, routes) the Netlink module uses to
// configure the host. Only the Netlink module imports this; no C type crosses its public API.
#ifndef VTEP_CNLROUTE_H
#define VTEP_CNLROUTE_H

#include <netlink/netlink.h>
#include <netlink/errno.h>
#include <netlink/cache.h>
#include <netlink/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/nexthop.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if.h>

// Macros with casts or expressions Swift does not import (netlink(7)).
static const int cnlroute_netlink_ext_ack = NETLINK_EXT_ACK;
static const int cnlroute_netlink_cap_ack = NETLINK_CAP_ACK;
static const int cnlroute_nlm_f_ack_tlvs = NLM_F_ACK_TLVS;
static const int cnlroute_nlm_f_capped = NLM_F_CAPPED;
static const int cnlroute_nlmsgerr_attr_msg = NLMSGERR_ATTR_MSG;
static const int cnlroute_nlm_f_excl = NLM_F_EXCL;
static const int cnlroute_iff_up = IFF_UP;
static const int cnlroute_iff_lower_up = IFF_LOWER_UP;
// rtnetlink's message types are an anonymous enum that CMnl's header includes too; in a
// whole-module (release) build Swift gives them to one of the two modules only, so the
// Netlink module's files that import the other could not see them.
static const int cnlroute_rtm_newroute = RTM_NEWROUTE;
static const int cnlroute_rtm_getroute = RTM_GETROUTE;
static const int cnlroute_nlmsg_done = NLMSG_DONE;
static const int cnlroute_nlmsg_error = NLMSG_ERROR;

#endif
