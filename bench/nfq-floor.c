// nfq-floor: a minimal NFQUEUE consumer in C, the reference floor for bench/flow.sh.
//
//   cc -O2 -o nfq-floor bench/nfq-floor.c -lnetfilter_queue -lmnl
//   nfq-floor [--queue N] [--batch] [--mark-bypass] [--minimal]
//
// One thread, blocking recv(), one NF_ACCEPT verdict per packet (the libmnl API of
// libnetfilter_queue 1.0.5, as in its examples/nf-queue.c). The queue is set up like the engine's
// (Sources/InterposeFlow/FlowQueueReader.swift): copy range 128 bytes, queue length 4096, flags
// GSO | UID_GID | FAIL_OPEN, a receive buffer of 4096 x (128 + 256) bytes and NETLINK_NO_ENOBUFS,
// so the kernel does the same work per packet for both and the difference is the reader.
//
//   --queue N      the queue to bind (default 0)
//   --batch        hold verdicts while more datagrams are waiting (recv MSG_DONTWAIT), up to 64, then
//                  answer them with one NFQNL_MSG_VERDICT_BATCH (the engine's batching, in C)
//   --mark-bypass  give every packet the flow engine's bypass mark: (mark & ~0x00700000) | 0x00400000
//                  (docs/flows.md, "The mark convention"), so a SYN queued by interpose-init's rules
//                  goes straight to its destination
//   --minimal      set no queue flags and no receive-buffer size (the kernel's defaults)
//
// It prints "nfq-floor: queue N bound" on stderr once the queue is bound. SIGUSR1 prints
// "count PACKETS NANOSECONDS" (packets verdicted so far, CLOCK_MONOTONIC) on stdout; SIGTERM or
// SIGINT prints a summary and exits.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define FLOW_MARK_MASK 0x00700000u
#define FLOW_MARK_BYPASS 0x00400000u
#define COPY_RANGE 128
#define QUEUE_LENGTH 4096
#define MAX_PENDING 64

static volatile sig_atomic_t want_report, want_stop;
static void on_usr1(int s) { (void)s; want_report = 1; }
static void on_stop(int s) { (void)s; want_stop = 1; }

static struct mnl_socket *nl;
static unsigned queue_num;
static uint32_t seq = 1;
static uint64_t verdicted, verdict_msgs, stale, enobufs, other_errors;
static uint64_t first_ns, last_ns;
static int mark_bypass;
static char rbuf[0xffff + 4096];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "nfq-floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void send_verdict(uint32_t id, uint32_t mark, int set_mark, int batch) {
    char buf[256];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, batch ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, (int)queue_num);
    nfq_nlmsg_verdict_put(nlh, (int)id, NF_ACCEPT);
    if (set_mark) nfq_nlmsg_verdict_put_mark(nlh, mark);
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) other_errors++;
    verdict_msgs++;
}

// Walks one datagram. For a packet: answers it at once (immediate) or records it as pending.
// Returns the number of packets seen.
static int handle(const char *buf, ssize_t len, int immediate, uint32_t *last_id, uint32_t *last_mark, uint32_t ack_seq, int *acked) {
    int packets = 0, remaining = (int)len;
    const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
    for (; mnl_nlmsg_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
        if (nlh->nlmsg_type == NLMSG_ERROR) {
            const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
            if (acked && nlh->nlmsg_seq == ack_seq) { *acked = err->error == 0 ? 1 : err->error; continue; }
            if (err->error == -ENOENT) stale++;
            else if (err->error != 0) other_errors++;
            continue;
        }
        if (nlh->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) continue;
        struct nlattr *attr[NFQA_MAX + 1] = {0};
        if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) continue;
        const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
        uint32_t id = ntohl(ph->packet_id);
        uint32_t mark = attr[NFQA_MARK] ? ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) : 0;
        mark = (mark & ~FLOW_MARK_MASK) | FLOW_MARK_BYPASS;
        if (immediate) send_verdict(id, mark, mark_bypass, 0);
        *last_id = id;
        *last_mark = mark;
        packets++;
    }
    return packets;
}

// One config message with NLM_F_ACK; waits for its ack (1.0.5 has no nfq_nlmsg_put2).
static void config(struct nlmsghdr *nlh, const char *step) {
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = ++seq;
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) die(step);
    int acked = 0;
    uint32_t id, mark;
    for (int tries = 0; tries < 64 && !acked; tries++) {
        ssize_t n = recv(mnl_socket_get_fd(nl), rbuf, sizeof(rbuf), 0);
        if (n < 0) {
            if (errno == EINTR || errno == ENOBUFS) continue;
            die(step);
        }
        handle(rbuf, n, 1, &id, &mark, nlh->nlmsg_seq, &acked);
    }
    if (acked != 1) {
        errno = acked < 0 ? -acked : ETIMEDOUT;
        die(step);
    }
}

int main(int argc, char **argv) {
    int batch = 0, minimal = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--queue") && i + 1 < argc) queue_num = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch")) batch = 1;
        else if (!strcmp(argv[i], "--mark-bypass")) mark_bypass = 1;
        else if (!strcmp(argv[i], "--minimal")) minimal = 1;
        else {
            fprintf(stderr, "usage: nfq-floor [--queue N] [--batch] [--mark-bypass] [--minimal]\n");
            return 2;
        }
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL); // no SA_RESTART: recv() returns EINTR and the loop reports
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    nl = mnl_socket_open(NETLINK_NETFILTER);
    if (!nl) die("mnl_socket_open");
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) die("mnl_socket_bind");
    int fd = mnl_socket_get_fd(nl);
    if (!minimal) {
        int one = 1, size = QUEUE_LENGTH * (COPY_RANGE + 256);
        setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }

    char buf[256];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, (int)queue_num);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
    config(nlh, "bind (another process holds the queue, or CAP_NET_ADMIN is missing)");
    nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, (int)queue_num);
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, COPY_RANGE);
    config(nlh, "set copy mode");
    nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, (int)queue_num);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, QUEUE_LENGTH);
    config(nlh, "set queue length");
    if (!minimal) {
        uint32_t flags = NFQA_CFG_F_GSO | NFQA_CFG_F_UID_GID | NFQA_CFG_F_FAIL_OPEN;
        nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, (int)queue_num);
        mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags)); // both attributes, or EINVAL
        mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
        config(nlh, "set flags");
    }
    fprintf(stderr, "nfq-floor: queue %u bound (%s, %s%s)\n", queue_num, batch ? "batch verdicts" : "one verdict per packet",
            minimal ? "no flags" : "flags GSO|UID_GID|FAIL_OPEN", mark_bypass ? ", bypass mark" : "");

    int pending = 0;
    uint32_t last_id = 0, last_mark = 0;
    while (!want_stop) {
        if (want_report) {
            want_report = 0;
            printf("count %llu %llu\n", (unsigned long long)verdicted, (unsigned long long)now_ns());
            fflush(stdout);
        }
        ssize_t n = recv(fd, rbuf, sizeof(rbuf), pending ? MSG_DONTWAIT : 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (pending) {
                    send_verdict(last_id, last_mark, mark_bypass, pending > 1);
                    verdicted += (uint64_t)pending;
                    pending = 0;
                    last_ns = now_ns();
                }
                continue;
            }
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) { enobufs++; continue; }
            die("recv");
        }
        int got = handle(rbuf, n, !batch, &last_id, &last_mark, 0, NULL);
        if (got == 0) continue;
        if (!first_ns) first_ns = now_ns();
        if (batch) {
            pending += got;
            if (pending >= MAX_PENDING) {
                send_verdict(last_id, last_mark, mark_bypass, pending > 1);
                verdicted += (uint64_t)pending;
                pending = 0;
            }
        } else {
            verdicted += (uint64_t)got;
        }
        last_ns = now_ns();
    }
    if (pending) { send_verdict(last_id, last_mark, mark_bypass, pending > 1); verdicted += (uint64_t)pending; }
    double secs = last_ns > first_ns ? (double)(last_ns - first_ns) / 1e9 : 0;
    printf("count %llu %llu\n", (unsigned long long)verdicted, (unsigned long long)now_ns());
    printf("verdicted %llu packets in %llu verdict messages; %.3f s from the first to the last: %.0f packets/s; stale %llu, enobufs %llu, errors %llu\n",
           (unsigned long long)verdicted, (unsigned long long)verdict_msgs, secs, secs > 0 ? (double)verdicted / secs : 0.0,
           (unsigned long long)stale, (unsigned long long)enobufs, (unsigned long long)other_errors);
    mnl_socket_close(nl);
    return 0;
}
