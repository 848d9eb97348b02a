// C shim for the few Linux socket options Swift cannot reach cleanly.
// The public header exposes plain C types only: including <linux/netfilter*.h>
// next to Glibc/NIO in a Swift module map redefines in6_addr (DESIGN.md section 8).
#ifndef CINTERPOSE_LINUX_H
#define CINTERPOSE_LINUX_H

#include <sys/socket.h>

// Reads the destination a connection had before NAT redirected it
// (SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for IPv6).
// Returns 0 on success, -1 with errno set otherwise.
int cinterpose_original_dst(int fd, int family, struct sockaddr_storage *out, socklen_t *len);

// Marks a socket transparent (IP_TRANSPARENT / IPV6_TRANSPARENT) so a TPROXY
// rule can hand it connections addressed to other hosts. Needs CAP_NET_ADMIN.
int cinterpose_set_transparent(int fd, int family);

// glibc keeps these behind _GNU_SOURCE, which Swift's Glibc module does not define.
// A pipe whose ends are close-on-exec, so no spawned child inherits them by accident.
int cinterpose_pipe_cloexec(int fds[2]);
// Makes a spawned child close every descriptor from `lowfd` up (after its dup2 actions).
// `actions` is a posix_spawn_file_actions_t* (void* keeps <spawn.h> out of this header).
int cinterpose_spawn_closefrom(void *actions, int lowfd);

#endif
