// udp-flood: UDP datagrams in a tight loop, the load of bench/flow.sh's verdict-rate test.
//
//   cc -O2 -o udp-flood bench/udp-flood.c
//   udp-flood [--dest ADDR] [--port P] [--seconds D] [--senders K] [--size BYTES]
//
// K processes (default 1), each with its own socket, sendto() ADDR:P (default 127.0.0.1:9) as fast
// as they can for D seconds (default 5). With an NFQUEUE rule on those datagrams every one waits in
// the queue for a verdict while it counts against its socket's send buffer, so a sender blocks once
// about 256 of its datagrams are waiting: the rate is the consumer's (closed loop).
// Prints "sent N in T s: R datagrams/s (K senders, E errors, C s CPU)" (C: the senders' user + system time).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *dest = "127.0.0.1";
    int port = 9, senders = 1, size = 16;
    double seconds = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dest") && i + 1 < argc) dest = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--senders") && i + 1 < argc) senders = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: udp-flood [--dest ADDR] [--port P] [--seconds D] [--senders K] [--size BYTES]\n");
            return 2;
        }
    }
    if (senders < 1 || senders > 64 || size < 1 || size > 1400 || seconds <= 0) {
        fprintf(stderr, "udp-flood: bad arguments\n");
        return 2;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, dest, &to.sin_addr) != 1) {
        fprintf(stderr, "udp-flood: '%s' is not an IPv4 address\n", dest);
        return 2;
    }
    int fds[64][2];
    double start = now_s(), deadline = start + seconds;
    for (int k = 0; k < senders; k++) {
        if (pipe(fds[k]) < 0) { perror("pipe"); return 1; }
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            if (s < 0) { perror("socket"); _exit(1); }
            // A consumer that stops answering must not keep a sender blocked past its deadline.
            struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
            setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            char payload[1400];
            memset(payload, 'x', sizeof(payload));
            unsigned long long sent = 0, errors = 0;
            for (;;) {
                for (int i = 0; i < 64; i++) {
                    if (sendto(s, payload, (size_t)size, 0, (struct sockaddr *)&to, sizeof(to)) >= 0) sent++;
                    else if (errno != EINTR && errno != EAGAIN) errors++;
                }
                if (now_s() >= deadline) break;
            }
            unsigned long long out[2] = {sent, errors};
            if (write(fds[k][1], out, sizeof(out)) != sizeof(out)) _exit(1);
            _exit(0);
        }
        close(fds[k][1]);
    }
    unsigned long long sent = 0, errors = 0;
    for (int k = 0; k < senders; k++) {
        unsigned long long in[2] = {0, 0};
        if (read(fds[k][0], in, sizeof(in)) == sizeof(in)) { sent += in[0]; errors += in[1]; }
        close(fds[k][0]);
    }
    while (wait(NULL) > 0) {}
    double elapsed = now_s() - start;
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("sent %llu in %.3f s: %.0f datagrams/s (%d senders, %llu errors, %.3f s CPU)\n", sent, elapsed, (double)sent / elapsed, senders, errors, cpu);
    return 0;
}
