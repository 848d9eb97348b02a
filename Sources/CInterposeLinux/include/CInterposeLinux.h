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

// ---- NFQUEUE (nfqueue.c). Handles are opaque; every call returns 0 or -errno unless noted. ----
#include <stdint.h>
#include <sys/types.h>

enum {
    CINTERPOSE_NFQ_PACKET = 1,
    CINTERPOSE_NFQ_ERROR = 2,
    // NFQA_CFG_F_* queue flags.
    CINTERPOSE_NFQ_F_FAIL_OPEN = 1,
    CINTERPOSE_NFQ_F_CONNTRACK = 2,
    CINTERPOSE_NFQ_F_GSO = 4,
    CINTERPOSE_NFQ_F_UID_GID = 8,
};

// One netlink message read from a queue socket: a queued packet, or an error/ack (error 0 is an ack).
struct cinterpose_nfq_event {
    int kind;
    int error;
    uint32_t seq;
    uint16_t queue;
    uint8_t hook;       // NF_INET_*: 0 prerouting, 3 local output
    uint32_t id;
    uint32_t mark;
    uint32_t uid, gid;
    int has_uid, has_gid;
    uint32_t indev, outdev;
    const void *payload; // points into the receive buffer
    uint32_t payload_len;
};

// Opens and binds a NETLINK_NETFILTER socket (NETLINK_NO_ENOBUFS, receive buffer, receive timeout).
// A packet read while a config ack is awaited is accepted with (mark & ~mark_mask) | fallback_mark.
// Returns NULL with errno set on failure.
void *cinterpose_nfq_open(unsigned rcvbuf_bytes, int rcv_timeout_ms, uint32_t fallback_mark, uint32_t mark_mask);
void cinterpose_nfq_close(void *handle);
// Releases the kernel side now (the queue unbinds, fail-open applies) but keeps the descriptor number
// occupied by a dummy until cinterpose_nfq_close, so a stalled thread cannot hit a reused descriptor.
int cinterpose_nfq_abandon(void *handle);
// Config messages: each is sent with NLM_F_ACK and its ack is read; the kernel's errno is returned.
int cinterpose_nfq_bind(void *handle, uint16_t queue, int unbind);
int cinterpose_nfq_set_params(void *handle, uint16_t queue, uint32_t copy_range);
int cinterpose_nfq_set_maxlen(void *handle, uint16_t queue, uint32_t maxlen);
int cinterpose_nfq_set_flags(void *handle, uint16_t queue, uint32_t flags, uint32_t mask);
// recv(); returns the byte count or -errno (-EAGAIN on timeout or when dontwait finds nothing).
ssize_t cinterpose_nfq_recv(void *handle, void *buf, size_t len, int dontwait);
// Splits one datagram into events; returns how many were written (at most max).
int cinterpose_nfq_parse(const void *buf, size_t len, struct cinterpose_nfq_event *events, int max);
// NF_ACCEPT (accept=1) or NF_DROP; a batch verdict applies to every queued id up to `id`.
int cinterpose_nfq_verdict(void *handle, uint16_t queue, uint32_t id, int accept, int set_mark, uint32_t mark, int batch);

// ---- Privileges (privileges.c) ----
// Root to uid/gid, supplementary groups cleared, keeping only the named capabilities (permitted and
// effective). Must run before any thread exists. Returns 0, or -1 with errno and the failed step.
int cinterpose_drop_privileges(unsigned uid, unsigned gid, int keep_net_admin, int keep_net_raw, const char **failed_step);

#endif
