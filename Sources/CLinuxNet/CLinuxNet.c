// _GNU_SOURCE must come before any libc header for recvmmsg, sendmmsg and setns.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <linux/ethtool.h>
#include <linux/filter.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>

#include "CLinuxNet.h"

_Static_assert(sizeof(clinuxnet_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(clinuxnet_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len),
               "mmsghdr layout");

int clinuxnet_recvmmsg(int fd, clinuxnet_mmsghdr *messages, unsigned int count, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)messages, count, flags, NULL);
}

int clinuxnet_sendmmsg(int fd, clinuxnet_mmsghdr *messages, unsigned int count, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)messages, count, flags);
}

int clinuxnet_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }

int clinuxnet_set_thread_name(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}

int clinuxnet_interface_mtu(int fd, const char *name) {
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFMTU, &request) < 0) return -1;
    return request.ifr_mtu;
}

int clinuxnet_interface_hardware_address(int fd, const char *name, uint8_t address[6]) {
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFHWADDR, &request) < 0) return -1;
    memcpy(address, request.ifr_hwaddr.sa_data, 6);
    return request.ifr_hwaddr.sa_family;
}

int clinuxnet_interface_disable_lro(int fd, const char *name) {
    struct ifreq request;
    struct ethtool_value value;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    value.cmd = ETHTOOL_GFLAGS;
    value.data = 0;
    request.ifr_data = (void *)&value;
    if (ioctl(fd, SIOCETHTOOL, &request) < 0) return errno == EOPNOTSUPP ? 0 : -1;
    if (!(value.data & ETH_FLAG_LRO)) return 0;
    value.cmd = ETHTOOL_SFLAGS;
    value.data &= ~ETH_FLAG_LRO;
    if (ioctl(fd, SIOCETHTOOL, &request) < 0) return -1;
    return 1;
}

int clinuxnet_attach_vxlan_filter(int fd, int has_v4, uint32_t v4, int has_v6,
                                  const uint32_t v6[4], uint16_t port, uint32_t longest) {
    // Jumps are relative to the next instruction; ACCEPT and REJECT are the last two.
    enum { V6 = 17, ACCEPT = 31, REJECT = 32 };
#define TO(target, here) ((uint8_t)((target) - (here) - 1))
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, longest, TO(REJECT, 1), 0),
        /* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
        /* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_HOST, 0, TO(REJECT, 3)),
        /* 4 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT),
        /* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, TO(REJECT, 5)),
        /* 6 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
        /* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, has_v4 ? ETH_P_IP : 0x10000, 0, TO(V6, 7)),
        /* 8 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 9),
        /* 9 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, TO(REJECT, 9)),
        /* 10 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 14 + 6),
        /* 11 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, TO(REJECT, 11), 0),
        /* 12 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 14 + 16),
        /* 13 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, v4, 0, TO(REJECT, 13)),
        /* 14 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),
        /* 15 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 14 + 2),
        /* 16 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, TO(ACCEPT, 16), TO(REJECT, 16)),
        /* 17 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
        /* 18 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, has_v6 ? ETH_P_IPV6 : 0x10000, 0,
                          TO(REJECT, 18)),
        /* 19 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 6),
        /* 20 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, TO(REJECT, 20)),
        /* 21 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 14 + 24),
        /* 22 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, has_v6 ? v6[0] : 0, 0, TO(REJECT, 22)),
        /* 23 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 14 + 28),
        /* 24 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, has_v6 ? v6[1] : 0, 0, TO(REJECT, 24)),
        /* 25 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 14 + 32),
        /* 26 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, has_v6 ? v6[2] : 0, 0, TO(REJECT, 26)),
        /* 27 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 14 + 36),
        /* 28 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, has_v6 ? v6[3] : 0, 0, TO(REJECT, 28)),
        /* 29 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 14 + 40 + 2),
        /* 30 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, TO(ACCEPT, 30), TO(REJECT, 30)),
        /* 31 ACCEPT: the whole frame */ BPF_STMT(BPF_RET | BPF_K, 0x40000),
        /* 32 REJECT */ BPF_STMT(BPF_RET | BPF_K, 0),
    };
#undef TO
    struct sock_fprog program = {.len = sizeof code / sizeof code[0], .filter = code};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}

int clinuxnet_drop_all_input(int fd) {
    struct sock_filter drop = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog program = {.len = 1, .filter = &drop};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}

long clinuxnet_send_udp_train(int fd, int ipv6, const uint8_t *address, uint16_t port,
                              const void *data, size_t length, uint16_t segment, int tos,
                              int ttl) {
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } to;
    memset(&to, 0, sizeof to);
    socklen_t to_length;
    if (ipv6) {
        to.v6.sin6_family = AF_INET6;
        to.v6.sin6_port = htons(port);
        memcpy(&to.v6.sin6_addr, address, 16);
        to_length = sizeof to.v6;
    } else {
        to.v4.sin_family = AF_INET;
        to.v4.sin_port = htons(port);
        memcpy(&to.v4.sin_addr, address, 4);
        to_length = sizeof to.v4;
    }
    union {
        char bytes[CMSG_SPACE(sizeof(uint16_t)) + 2 * CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec vector = {.iov_base = (void *)data, .iov_len = length};
    struct msghdr message = {
        .msg_name = &to,
        .msg_namelen = to_length,
        .msg_iov = &vector,
        .msg_iovlen = 1,
        .msg_control = control.bytes,
        .msg_controllen = sizeof control.bytes,
    };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = IPPROTO_UDP; // SOL_UDP
    header->cmsg_type = 103; // UDP_SEGMENT
    header->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(header), &segment, sizeof segment);
    header = CMSG_NXTHDR(&message, header);
    header->cmsg_level = ipv6 ? IPPROTO_IPV6 : IPPROTO_IP;
    header->cmsg_type = ipv6 ? IPV6_TCLASS : IP_TOS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &tos, sizeof tos);
    header = CMSG_NXTHDR(&message, header);
    header->cmsg_level = ipv6 ? IPPROTO_IPV6 : IPPROTO_IP;
    header->cmsg_type = ipv6 ? IPV6_HOPLIMIT : IP_TTL;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &ttl, sizeof ttl);
    ssize_t sent = sendmsg(fd, &message, MSG_DONTWAIT);
    return sent < 0 ? -errno : (long)sent;
}

// From Linux 6.17's <linux/if_tun.h>; Debian 12's headers predate it.
#ifndef TUN_F_UDP_TUNNEL_GSO
#define TUN_F_UDP_TUNNEL_GSO 0x080
#endif

int clinuxnet_open_tunnel_gso_tap(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    request.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL);
    int little = 1;
    int size = 24; // struct virtio_net_hdr_v1_hash_tunnel
    int error = 0;
    if (ioctl(fd, TUNSETIFF, &request) < 0 || ioctl(fd, TUNSETVNETLE, &little) < 0 ||
        ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) {
        error = errno;
        goto fail;
    }
    // Kernels that know UDP-tunnel GSO accept the flag; older ones refuse it (EINVAL), and
    // would refuse a tunnel GSO header on write as well.
    if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UDP_TUNNEL_GSO) < 0) {
        error = errno == EINVAL ? EOPNOTSUPP : errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    errno = error;
    return -1;
}

int clinuxnet_interface_up_noarp(const char *name) {
    int control = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (control < 0) return -1;
    struct ifreq link;
    memset(&link, 0, sizeof link);
    strncpy(link.ifr_name, name, IFNAMSIZ - 1);
    link.ifr_flags = IFF_UP | IFF_NOARP;
    int result = ioctl(control, SIOCSIFFLAGS, &link);
    int error = errno;
    close(control);
    errno = error;
    return result;
}

int clinuxnet_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int clinuxnet_epoll_add(int epfd, int fd, unsigned slot) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = EPOLLIN;
    event.data.u32 = slot;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int clinuxnet_epoll_wait(int epfd, int *slots, int max, int timeout) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, events, max, timeout);
    for (int i = 0; i < n; i++) slots[i] = (int)events[i].data.u32;
    return n;
}

static int stop_signal_fd = -1;

static void stop_signal_handler(int signal_number) {
    int saved = errno;
    unsigned char byte = (unsigned char)signal_number;
    // A full pipe already holds a signal waiting to be read: nothing is lost.
    ssize_t written = write(stop_signal_fd, &byte, 1);
    (void)written;
    errno = saved;
}

int clinuxnet_catch_stop_signals(void) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    stop_signal_fd = fds[1];
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = stop_signal_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) {
        int saved = errno;
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    return fds[0];
}
