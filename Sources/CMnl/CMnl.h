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

#endif
