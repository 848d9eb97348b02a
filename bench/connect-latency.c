// connect-latency: how long a TCP connect() takes, for bench/flow.sh's added-latency test.
//
//   cc -O2 -o connect-latency bench/connect-latency.c
//   connect-latency listen PORT [--seconds S]
//   connect-latency connect ADDR PORT [--count N] [--warmup W] [--bind SRC [--port-base B]] [--raw FILE]
//
// listen: accepts connections on 0.0.0.0:PORT and closes each at once, for S seconds (default 600).
// connect: W untimed connects (default 200), then N (default 5000) sequential connects to
// ADDR:PORT (IPv4); each connect() is timed with CLOCK_MONOTONIC (from the call to its return, which
// is when the SYN-ACK has come back), then the socket is closed with SO_LINGER 0 (a reset: no
// TIME_WAIT, so runs of thousands of connects never run out of ephemeral ports).
// --bind SRC connects from SRC:B, SRC:B+1, ... (B: --port-base, default 20000: below the ephemeral
// range and clear of the proxy's ports 15000-15090, which such a bind would collide with), so every
// connect has a port of its own: the kernel's ephemeral ports come back within a run (435 times in
// 5200 connects here), and a SYN on a 4-tuple whose conntrack entry is still there need not be a new
// flow, so it may skip the flow engine's queue (a fresh SRC per run does the same across runs). Prints
// "connects N errors E us p50 X p90 Y p99 Z min A max B mean C"; --raw writes every sample (µs).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

// Nearest-rank percentile of sorted samples.
static double pct(const uint64_t *v, int n, double p) {
    int rank = (int)(p / 100.0 * n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return (double)v[rank - 1] / 1000.0;
}

static int do_listen(int port, int seconds) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { perror("socket"); return 1; }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) { perror("bind"); return 1; }
    if (listen(s, 4096) < 0) { perror("listen"); return 1; }
    fprintf(stderr, "connect-latency: listening on :%d\n", port);
    alarm((unsigned)seconds);
    unsigned long long accepted = 0;
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            perror("accept");
            return 1;
        }
        accepted++;
        close(c);
    }
}

static int do_connect(const char *addr, int port, int count, int warmup, const char *src, int port_base, const char *raw) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &to.sin_addr) != 1) {
        fprintf(stderr, "connect-latency: '%s' is not an IPv4 address\n", addr);
        return 2;
    }
    struct sockaddr_in from = {.sin_family = AF_INET};
    if (src && inet_pton(AF_INET, src, &from.sin_addr) != 1) {
        fprintf(stderr, "connect-latency: '%s' is not an IPv4 address\n", src);
        return 2;
    }
    uint64_t *samples = calloc((size_t)count, sizeof(uint64_t));
    if (!samples) return 1;
    int n = 0, errors = 0, last_errno = 0;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    for (int i = 0; i < warmup + count; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) { perror("socket"); return 1; }
        if (src) {
            from.sin_port = htons((uint16_t)(port_base + i));
            if (bind(s, (struct sockaddr *)&from, sizeof(from)) < 0) { perror("bind"); return 1; }
        }
        uint64_t t0 = now_ns();
        int r = connect(s, (struct sockaddr *)&to, sizeof(to));
        uint64_t t1 = now_ns();
        if (r < 0) {
            errors++;
            last_errno = errno;
        } else if (i >= warmup) {
            samples[n++] = t1 - t0;
        }
        setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(s);
    }
    if (raw) {
        FILE *f = fopen(raw, "w");
        if (f) {
            for (int i = 0; i < n; i++) fprintf(f, "%.3f\n", (double)samples[i] / 1000.0);
            fclose(f);
        }
    }
    if (n == 0) {
        printf("connects 0 errors %d (last: %s)\n", errors, strerror(last_errno));
        return 1;
    }
    qsort(samples, (size_t)n, sizeof(uint64_t), cmp_u64);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)samples[i];
    printf("connects %d errors %d us p50 %.1f p90 %.1f p99 %.1f min %.1f max %.1f mean %.1f\n", n, errors, pct(samples, n, 50),
           pct(samples, n, 90), pct(samples, n, 99), (double)samples[0] / 1000.0, (double)samples[n - 1] / 1000.0, sum / n / 1000.0);
    if (errors) fprintf(stderr, "connect-latency: %d connects failed (last: %s)\n", errors, strerror(last_errno));
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "listen")) {
        int seconds = 600;
        for (int i = 3; i < argc; i++) {
            if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atoi(argv[++i]);
            else goto usage;
        }
        return do_listen(atoi(argv[2]), seconds);
    }
    if (argc >= 4 && !strcmp(argv[1], "connect")) {
        int count = 5000, warmup = 200;
        const char *raw = NULL, *src = NULL;
        int port_base = 20000;
        for (int i = 4; i < argc; i++) {
            if (!strcmp(argv[i], "--count") && i + 1 < argc) count = atoi(argv[++i]);
            else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
            else if (!strcmp(argv[i], "--raw") && i + 1 < argc) raw = argv[++i];
            else if (!strcmp(argv[i], "--bind") && i + 1 < argc) src = argv[++i];
            else if (!strcmp(argv[i], "--port-base") && i + 1 < argc) port_base = atoi(argv[++i]);
            else goto usage;
        }
        if (count < 1 || warmup < 0 || port_base < 1 || (src && port_base + warmup + count > 65536)) goto usage;
        return do_connect(argv[2], atoi(argv[3]), count, warmup, src, port_base, raw);
    }
usage:
    fprintf(stderr, "usage: connect-latency listen PORT [--seconds S]\n"
                    "       connect-latency connect ADDR PORT [--count N] [--warmup W] [--bind SRC [--port-base B]] [--raw FILE]\n");
    return 2;
}
