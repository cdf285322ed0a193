// Linux socket details Swift cannot see on its own: macros (CMSG_*), GNU-only calls
// (recvmmsg, sendmmsg, setns) and AF_PACKET constants. Only wrappers live here, no logic:
// the data plane's decisions stay in Swift where they are tested.
#ifndef VTEP_CLINUXNET_H
#define VTEP_CLINUXNET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if_arp.h>
#include <linux/sock_diag.h>

/// Layout-compatible with glibc's `struct mmsghdr`, which is only declared under
/// _GNU_SOURCE and so is invisible to Swift's Glibc module (SwiftNIO's CNIOLinux does the
/// same).
typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} clinuxnet_mmsghdr;

/// recvmmsg(2); `timeout` is always NULL: our sockets are non-blocking.
int clinuxnet_recvmmsg(int fd, clinuxnet_mmsghdr *messages, unsigned int count, int flags);
/// sendmmsg(2).
int clinuxnet_sendmmsg(int fd, clinuxnet_mmsghdr *messages, unsigned int count, int flags);
/// setns(2) into a network namespace, for the calling thread only.
int clinuxnet_setns_net(int fd);

/// pthread_setname_np(3) on the calling thread (at most 15 bytes); 0 or an error number.
int clinuxnet_set_thread_name(const char *name);
/// The MTU of interface `name` (ioctl SIOCGIFMTU on the socket `fd`); -1 with errno on
/// failure.
int clinuxnet_interface_mtu(int fd, const char *name);
/// Turns large receive offload off on interface `name` (ethtool ETHTOOL_GFLAGS/SFLAGS,
/// ETH_FLAG_LRO), as the kernel's bridge does for its ports (dev_disable_lro): LRO merges
/// frames in a way that cannot be segmented again. Returns 1 when it was on and is now off, 0
/// when it was off already or the device has no LRO, -1 with errno on failure.
int clinuxnet_interface_disable_lro(int fd, const char *name);
/// The hardware address of interface `name` (ioctl SIOCGIFHWADDR): copies its first 6
/// bytes to `address` and returns its ARPHRD_* type; -1 with errno on failure.
int clinuxnet_interface_hardware_address(int fd, const char *name, uint8_t address[6]);

/// Attaches a socket filter that accepts nothing: for a raw socket that only sends (a raw
/// socket of a protocol otherwise gets a copy of every packet of that protocol).
int clinuxnet_drop_all_input(int fd);

/// Sends `length` bytes at `data` to `address` (4 bytes, or 16 with `ipv6`) and `port` on UDP
/// socket `fd` as one UDP GSO train: UDP_SEGMENT (Linux 4.18) of `segment` bytes, so the
/// kernel (or the NIC) cuts it into datagrams of `segment` bytes, the last one shorter; with
/// the outer IPv4 TOS and TTL (IPv6 traffic class and hop limit) `tos` and `ttl` (IP_TOS /
/// IP_TTL, IPV6_TCLASS / IPV6_HOPLIMIT ancillary data). Non-blocking. Returns the bytes
/// sent, or -errno.
long clinuxnet_send_udp_train(int fd, int ipv6, const uint8_t *address, uint16_t port,
                              const void *data, size_t length, uint16_t segment, int tos,
                              int ttl);

// Opens (creating) the TAP device `name` for writing VXLAN super-packets with the
// 24-byte virtio_net_hdr that carries UDP-tunnel GSO (Linux 6.17+): IFF_TAP, IFF_NO_PI,
// IFF_VNET_HDR, IFF_TUN_EXCL, little-endian header, non-blocking, close-on-exec; the
// device exists while the descriptor is open. Returns the descriptor; -1 with errno,
// EOPNOTSUPP where the kernel has no UDP-tunnel GSO for TUN/TAP. The device is left down
// (clinuxnet_interface_up_noarp), so its per-device settings can be written before it comes up.
int clinuxnet_open_tunnel_gso_tap(const char *name);

// Brings the interface up with IFF_NOARP.
int clinuxnet_interface_up_noarp(const char *name);


/// Attaches a classic BPF filter that accepts only unicast VXLAN to this host: frames of at
/// most `longest` bytes (Ethernet header included) addressed to this host's MAC (PACKET_HOST),
/// without a VLAN tag, carrying UDP to `port` in an IPv4 packet to `v4` (a host-order address;
/// `has_v4` 0 for none) that is not a fragment, or in an IPv6 packet to `v6` (four host-order
/// 32-bit words, first to last; `has_v6` 0 for none) whose next header is UDP. Everything else
/// stays with the kernel.
int clinuxnet_attach_vxlan_filter(int fd, int has_v4, uint32_t v4, int has_v6,
                                  const uint32_t v6[4], uint16_t port, uint32_t longest);

// MARK: - CMSG(3) macros as functions

static inline struct cmsghdr *clinuxnet_cmsg_firsthdr(struct msghdr *message) {
    return CMSG_FIRSTHDR(message);
}

static inline struct cmsghdr *clinuxnet_cmsg_nxthdr(struct msghdr *message,
                                                    struct cmsghdr *header) {
    return CMSG_NXTHDR(message, header);
}

static inline void *clinuxnet_cmsg_data(struct cmsghdr *header) { return CMSG_DATA(header); }

static inline size_t clinuxnet_cmsg_space(size_t length) { return CMSG_SPACE(length); }

static inline size_t clinuxnet_cmsg_len(size_t length) { return CMSG_LEN(length); }

// MARK: - Constants (some are macros with casts or enum members Swift imports awkwardly)

static const int clinuxnet_sock_nonblock = SOCK_NONBLOCK;
static const int clinuxnet_sock_cloexec = SOCK_CLOEXEC;
static const int clinuxnet_sock_raw = SOCK_RAW;
static const int clinuxnet_sock_dgram = SOCK_DGRAM;
static const int clinuxnet_msg_trunc = MSG_TRUNC;
static const int clinuxnet_msg_ctrunc = MSG_CTRUNC;

static const int clinuxnet_sol_packet = SOL_PACKET;
static const int clinuxnet_eth_p_all = ETH_P_ALL;
static const int clinuxnet_packet_add_membership = PACKET_ADD_MEMBERSHIP;
static const int clinuxnet_packet_mr_promisc = PACKET_MR_PROMISC;
static const int clinuxnet_packet_auxdata = PACKET_AUXDATA;
static const int clinuxnet_packet_ignore_outgoing = PACKET_IGNORE_OUTGOING;
static const int clinuxnet_packet_qdisc_bypass = PACKET_QDISC_BYPASS;
static const int clinuxnet_packet_vnet_hdr = PACKET_VNET_HDR;
static const uint32_t clinuxnet_tp_status_vlan_valid = TP_STATUS_VLAN_VALID;
static const uint32_t clinuxnet_tp_status_vlan_tpid_valid = TP_STATUS_VLAN_TPID_VALID;
static const int clinuxnet_packet_version = PACKET_VERSION;
static const int clinuxnet_tpacket_v2 = TPACKET_V2;
static const int clinuxnet_packet_rx_ring = PACKET_RX_RING;
static const int clinuxnet_packet_copy_thresh = PACKET_COPY_THRESH;
static const int clinuxnet_packet_statistics = PACKET_STATISTICS;
static const uint32_t clinuxnet_tp_status_kernel = TP_STATUS_KERNEL;
static const uint32_t clinuxnet_tp_status_user = TP_STATUS_USER;
static const uint32_t clinuxnet_tp_status_copy = TP_STATUS_COPY;
static const uint32_t clinuxnet_tp_status_losing = TP_STATUS_LOSING;

/// The status word of a TPACKET_V2 ring frame, read with acquire ordering: the frame's bytes
/// the kernel wrote before setting TP_STATUS_USER are visible after it.
static inline uint32_t clinuxnet_ring_status(const void *frame) {
    return __atomic_load_n(&((const struct tpacket2_hdr *)frame)->tp_status, __ATOMIC_ACQUIRE);
}

/// Hands a ring frame back to the kernel (TP_STATUS_KERNEL) with release ordering: our reads
/// of it are done before the kernel may write it again.
static inline void clinuxnet_ring_release(void *frame) {
    __atomic_store_n(&((struct tpacket2_hdr *)frame)->tp_status, TP_STATUS_KERNEL,
                     __ATOMIC_RELEASE);
}

static const int clinuxnet_packet_tx_ring = PACKET_TX_RING;
static const int clinuxnet_packet_loss = PACKET_LOSS;
static const uint32_t clinuxnet_tp_status_available = TP_STATUS_AVAILABLE;
static const uint32_t clinuxnet_tp_status_send_request = TP_STATUS_SEND_REQUEST;
static const int clinuxnet_msg_dontwait = MSG_DONTWAIT;

/// Hands a transmit ring frame of `length` bytes to the kernel (TP_STATUS_SEND_REQUEST) with
/// release ordering: the frame's bytes and length are written before the kernel may read them.
static inline void clinuxnet_ring_request(void *frame, uint32_t length) {
    struct tpacket2_hdr *header = (struct tpacket2_hdr *)frame;
    header->tp_len = length;
    __atomic_store_n(&header->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
}

/// Where a TPACKET_V2 transmit ring frame's data starts (TPACKET2_HDRLEN less the
/// sockaddr_ll the kernel leaves room for on receive: net/packet/af_packet.c
/// `tpacket_parse_header`).
static const int clinuxnet_tpacket2_tx_data_offset =
    TPACKET_ALIGN(sizeof(struct tpacket2_hdr));

static const int clinuxnet_ip_mtu_discover = IP_MTU_DISCOVER;
static const int clinuxnet_ip_pmtudisc_do = IP_PMTUDISC_DO;
static const int clinuxnet_ipv6_dontfrag = IPV6_DONTFRAG;
static const int clinuxnet_ipv6_v6only = IPV6_V6ONLY;
static const int clinuxnet_ipv6_checksum = IPV6_CHECKSUM;
static const int clinuxnet_arphrd_ether = ARPHRD_ETHER;

// UDP GRO (Linux 5.0) and GSO (4.18): linux/udp.h values, which glibc's netinet/udp.h only
// has from 2.34 on under other guards.
static const int clinuxnet_sol_udp = 17;
static const int clinuxnet_udp_segment = 103;
static const int clinuxnet_udp_gro = 104;

// Socket buffers and the kernel's per-socket drop count. The *FORCE options (CAP_NET_ADMIN)
// may exceed net.core.rmem_max / wmem_max; SO_MEMINFO (Linux 4.6) returns sk_meminfo, whose
// SK_MEMINFO_DROPS entry counts what the kernel dropped because the receive queue was full.
static const int clinuxnet_so_rcvbufforce = SO_RCVBUFFORCE;
static const int clinuxnet_so_sndbufforce = SO_SNDBUFFORCE;
static const int clinuxnet_so_meminfo = SO_MEMINFO;
static const int clinuxnet_sk_meminfo_drops = SK_MEMINFO_DROPS;
static const int clinuxnet_sk_meminfo_vars = SK_MEMINFO_VARS;

// Multicast membership (ip(7) IP_ADD_MEMBERSHIP with struct ip_mreqn, ipv6(7)
// IPV6_ADD_MEMBERSHIP, which RFC 3493 names IPV6_JOIN_GROUP). IP_MULTICAST_ALL off makes a
// wildcard-bound socket receive only the groups it joined itself, not every group any
// socket on the host joined.
static const int clinuxnet_ip_add_membership = IP_ADD_MEMBERSHIP;
static const int clinuxnet_ip_drop_membership = IP_DROP_MEMBERSHIP;
static const int clinuxnet_ip_multicast_all = IP_MULTICAST_ALL;
// Binding to an address the host does not have (yet): ip(7) IP_FREEBIND, which an IPv6 UDP
// socket takes at the IP level too.
static const int clinuxnet_ip_freebind = IP_FREEBIND;
static const int clinuxnet_ipv6_join_group = IPV6_JOIN_GROUP;
static const int clinuxnet_ipv6_leave_group = IPV6_LEAVE_GROUP;
static const int clinuxnet_ipv6_multicast_all = IPV6_MULTICAST_ALL;

#endif

// The data-plane worker's readiness wait (epoll, close-on-exec, level-triggered, EPOLLIN):
// each descriptor is added with its slot in the worker's table as the event's data, and a
// wait writes the slots of the ready ones to `slots` (at most `max`, no more than 64) and
// returns their count, or -1 with errno. Kept in C: struct epoll_event is packed on x86-64.
int clinuxnet_epoll_create(void);
int clinuxnet_epoll_add(int epfd, int fd, unsigned slot);
int clinuxnet_epoll_wait(int epfd, int *slots, int max, int timeout);

// SIGTERM and SIGINT caught for an orderly stop from a daemon's first step: makes a pipe
// (close-on-exec, non-blocking) whose write end the handler (SA_RESTART) writes each signal's
// number to as one byte, the only thing it does, which is async-signal-safe. Returns the read
// end, or -1 with errno. Once per process.
int clinuxnet_catch_stop_signals(void);
