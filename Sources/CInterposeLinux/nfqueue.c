// NFQUEUE through libnetfilter_queue's libmnl API (the package's examples/nf-queue.c shape).
// Kept in C so <linux/netfilter*.h> and libmnl never meet Swift's Glibc module (DESIGN.md section 8).
#define _GNU_SOURCE
#include "CInterposeLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

// The header's flag values (what Swift uses) are the kernel's, checked when this file compiles.
_Static_assert(CINTERPOSE_NFQ_F_FAIL_OPEN == NFQA_CFG_F_FAIL_OPEN, "NFQA_CFG_F_FAIL_OPEN");
_Static_assert(CINTERPOSE_NFQ_F_CONNTRACK == NFQA_CFG_F_CONNTRACK, "NFQA_CFG_F_CONNTRACK");
_Static_assert(CINTERPOSE_NFQ_F_GSO == NFQA_CFG_F_GSO, "NFQA_CFG_F_GSO");
_Static_assert(CINTERPOSE_NFQ_F_UID_GID == NFQA_CFG_F_UID_GID, "NFQA_CFG_F_UID_GID");

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

struct cinterpose_nfq {
    struct mnl_socket *nl;
    int fd;
    // The verdict for a packet that arrives while a config ack is awaited (before the reader runs).
    uint32_t fallback_mark, mark_mask;
    uint32_t seq;
    // Where config acks are read (one queue's, only while it is configured; not per thread).
    char ack_buf[0xffff + 4096];
};

void *cinterpose_nfq_open(unsigned rcvbuf_bytes, int rcv_timeout_ms, uint32_t fallback_mark, uint32_t mark_mask) {
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (!nl) return NULL;
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = errno;
        mnl_socket_close(nl);
        errno = e;
        return NULL;
    }
    int fd = mnl_socket_get_fd(nl);
    int one = 1;
    // Lost notifications are counted by the kernel (user_dropped); an ENOBUFS error must not stop reads.
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
    int size = (int)rcvbuf_bytes;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    struct timeval tv = { .tv_sec = rcv_timeout_ms / 1000, .tv_usec = (rcv_timeout_ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct cinterpose_nfq *h = calloc(1, sizeof(*h));
    if (!h) {
        mnl_socket_close(nl);
        errno = ENOMEM;
        return NULL;
    }
    h->nl = nl;
    h->fd = fd;
    h->fallback_mark = fallback_mark;
    h->mark_mask = mark_mask;
    h->seq = 1;
    return h;
}

void cinterpose_nfq_close(void *handle) {
    struct cinterpose_nfq *h = handle;
    if (!h) return;
    mnl_socket_close(h->nl);
    free(h);
}

int cinterpose_nfq_abandon(void *handle) {
    struct cinterpose_nfq *h = handle;
    // Put a harmless socket in the descriptor's place: the netlink socket is released (the kernel
    // unbinds the queue, so its fail-open applies) while a stalled reader still holding the number
    // can never touch a socket opened later under the same number.
    int dummy = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (dummy < 0) return -errno;
    int r = dup3(dummy, h->fd, O_CLOEXEC);
    int e = errno;
    close(dummy);
    return r < 0 ? -e : 0;
}

ssize_t cinterpose_nfq_recv(void *handle, void *buf, size_t len, int dontwait) {
    struct cinterpose_nfq *h = handle;
    ssize_t n = recv(h->fd, buf, len, dontwait ? MSG_DONTWAIT : 0);
    return n < 0 ? -errno : n;
}

static int parse_one(const struct nlmsghdr *nlh, struct cinterpose_nfq_event *ev) {
    memset(ev, 0, sizeof(*ev));
    if (nlh->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
        ev->kind = CINTERPOSE_NFQ_ERROR;
        ev->error = -err->error;
        ev->seq = nlh->nlmsg_seq;
        return 1;
    }
    if (nlh->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) return 0;
    struct nlattr *attr[NFQA_MAX + 1] = {0};
    if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) return 0;
    const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
    const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
    ev->kind = CINTERPOSE_NFQ_PACKET;
    ev->queue = ntohs(nfg->res_id);
    ev->id = ntohl(ph->packet_id);
    ev->hook = ph->hook;
    if (attr[NFQA_MARK]) ev->mark = ntohl(mnl_attr_get_u32(attr[NFQA_MARK]));
    if (attr[NFQA_UID]) { ev->uid = ntohl(mnl_attr_get_u32(attr[NFQA_UID])); ev->has_uid = 1; }
    if (attr[NFQA_GID]) { ev->gid = ntohl(mnl_attr_get_u32(attr[NFQA_GID])); ev->has_gid = 1; }
    if (attr[NFQA_IFINDEX_INDEV]) ev->indev = ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_INDEV]));
    if (attr[NFQA_IFINDEX_OUTDEV]) ev->outdev = ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_OUTDEV]));
    if (attr[NFQA_PAYLOAD]) {
        ev->payload = mnl_attr_get_payload(attr[NFQA_PAYLOAD]);
        ev->payload_len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
    }
    return 1;
}

int cinterpose_nfq_parse(const void *buf, size_t len, struct cinterpose_nfq_event *events, int max) {
    int count = 0;
    int remaining = (int)len;
    const struct nlmsghdr *nlh = buf;
    while (count < max && mnl_nlmsg_ok(nlh, remaining)) {
        if (parse_one(nlh, &events[count])) count++;
        nlh = mnl_nlmsg_next(nlh, &remaining);
    }
    return count;
}

int cinterpose_nfq_verdict(void *handle, uint16_t queue, uint32_t id, int accept, int set_mark, uint32_t mark, int batch) {
    struct cinterpose_nfq *h = handle;
    char buf[256];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, batch ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, queue);
    nfq_nlmsg_verdict_put(nlh, (int)id, accept ? NF_ACCEPT : NF_DROP);
    if (set_mark) nfq_nlmsg_verdict_put_mark(nlh, mark);
    return mnl_socket_sendto(h->nl, nlh, nlh->nlmsg_len) < 0 ? -errno : 0;
}

// Sends one config message with NLM_F_ACK and waits (up to 2 s) for its ack (1.0.5 has no
// nfq_nlmsg_put2). A packet that arrives meanwhile gets the fallback verdict mark at once (the
// proxy's): it must neither wait for a reader not yet running nor keep the "no verdict" mark, which
// the capture rules treat as "no engine" and let past the proxy and its rules.
static int send_config(struct cinterpose_nfq *h, struct nlmsghdr *nlh) {
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = ++h->seq;
    if (mnl_socket_sendto(h->nl, nlh, nlh->nlmsg_len) < 0) return -errno;
    struct cinterpose_nfq_event ev;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > 2000) return -ETIMEDOUT;
        ssize_t n = recv(h->fd, h->ack_buf, sizeof(h->ack_buf), 0);
        if (n < 0) {
            if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN) continue;
            return -errno;
        }
        int remaining = (int)n;
        const struct nlmsghdr *m = (const struct nlmsghdr *)h->ack_buf;
        while (mnl_nlmsg_ok(m, remaining)) {
            if (parse_one(m, &ev)) {
                if (ev.kind == CINTERPOSE_NFQ_ERROR && ev.seq == nlh->nlmsg_seq) return -ev.error;
                if (ev.kind == CINTERPOSE_NFQ_PACKET) {
                    uint32_t mark = (ev.mark & ~h->mark_mask) | h->fallback_mark;
                    cinterpose_nfq_verdict(h, ev.queue, ev.id, 1, 1, mark, 0);
                }
            }
            m = mnl_nlmsg_next(m, &remaining);
        }
    }
}

int cinterpose_nfq_bind(void *handle, uint16_t queue, int unbind) {
    char buf[256];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, unbind ? NFQNL_CFG_CMD_UNBIND : NFQNL_CFG_CMD_BIND);
    return send_config(handle, nlh);
}

int cinterpose_nfq_set_params(void *handle, uint16_t queue, uint32_t copy_range) {
    char buf[256];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, (int)copy_range);
    return send_config(handle, nlh);
}

int cinterpose_nfq_set_maxlen(void *handle, uint16_t queue, uint32_t maxlen) {
    char buf[256];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, maxlen);
    return send_config(handle, nlh);
}

int cinterpose_nfq_set_flags(void *handle, uint16_t queue, uint32_t flags, uint32_t mask) {
    char buf[256];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
    // Both attributes, or the kernel answers EINVAL.
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
    return send_config(handle, nlh);
}
