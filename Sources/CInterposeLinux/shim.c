#define _GNU_SOURCE
#include "CInterposeLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif

int cinterpose_original_dst(int fd, int family, struct sockaddr_storage *out, socklen_t *len) {
    *len = sizeof(*out);
    if (family == AF_INET6) {
        return getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, len);
    }
    return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, len);
}

int cinterpose_set_transparent(int fd, int family) {
    int one = 1;
    if (family == AF_INET6) {
        return setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
    }
    return setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
}

int cinterpose_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int cinterpose_spawn_closefrom(void *actions, int lowfd) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowfd);
}
