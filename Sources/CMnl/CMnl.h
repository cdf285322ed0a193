// libmnl and the rtnetlink structures and constants Netlink builds its requests from. Only
// the Netlink module imports this; no C type crosses its public API.
#ifndef VTEP_CMNL_H
#define VTEP_CMNL_H

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/neighbour.h>
#include <sys/socket.h>

// Macros with casts or expressions Swift does not import.
static const int cmnl_ntf_use = NTF_USE;
static const int cmnl_sock_cloexec = SOCK_CLOEXEC;
static const int cmnl_nlm_f_ack_tlvs = NLM_F_ACK_TLVS;
static const int cmnl_nlm_f_capped = NLM_F_CAPPED;
// rtm_type values. rtnetlink.h declares them in an anonymous enum, which Swift stops seeing
// once a second module (CNLRoute) includes the same header.
static const int cmnl_rtn_unicast = RTN_UNICAST;
static const int cmnl_rtn_local = RTN_LOCAL;
static const int cmnl_rtn_broadcast = RTN_BROADCAST;
static const int cmnl_rtn_anycast = RTN_ANYCAST;
static const int cmnl_rtn_multicast = RTN_MULTICAST;

#endif
