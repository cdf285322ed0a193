// _GNU_SOURCE must come before any libc header for recvmmsg, sendmmsg and setns.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/ethtool.h>
#include <linux/filter.h>
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

int clinuxnet_drop_all_input(int fd) {
    struct sock_filter drop = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog program = {.len = 1, .filter = &drop};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}
