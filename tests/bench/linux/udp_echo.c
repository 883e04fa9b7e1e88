// udp-echo PORT [--threads T] [--idle-exit MS]: the Linux side of
// kernel/apps/udp_echo.cc. One SO_REUSEPORT socket per thread on one port
// (the kernel spreads flows over them, as our udp_reuseport does), each
// sending every datagram back unchanged. Prints "udp-echo: listening on udp
// port P with T threads" once bound (hosts wait for it), and after MS ms
// without a request (once one came) "udp-echo: requests=N".
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common.h"

static uint64_t port, nthreads = 1, idle_exit_ms = 0;
static _Atomic uint64_t requests;
static _Atomic int stop;

static void* serve(void* arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    while (!atomic_load(&stop)) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr*)&from, &fl);
        if (n < 0) {
            continue;  // the receive timeout: look at stop again
        }
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr*)&from, fl);
        atomic_fetch_add_explicit(&requests, 1, memory_order_relaxed);
    }
    return NULL;
}

int main(int argc, char** argv)
{
    struct option_u64 opts[] = {{"threads", &nthreads}, {"idle-exit", &idle_exit_ms}};
    if (argc < 2 || !(port = strtoull(argv[1], 0, 10)) || port > 65535 || !parse_options(argc, argv, 2, opts, 2) ||
        !nthreads || nthreads > 64) {
        fprintf(stderr, "usage: udp-echo PORT [--threads T] [--idle-exit MS]\n");
        return 2;
    }
    pthread_t t[64];
    for (uint64_t i = 0; i < nthreads; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
        struct timeval tv = {0, 100000};
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        if (fd < 0 || bind(fd, (struct sockaddr*)&a, sizeof a) < 0) {
            perror("udp-echo: bind");
            return 1;
        }
        pthread_create(&t[i], NULL, serve, (void*)(intptr_t)fd);
    }
    printf("udp-echo: listening on udp port %llu with %llu threads\n", (unsigned long long)port,
           (unsigned long long)nthreads);
    fflush(stdout);
    uint64_t last = 0, idle_since = now_ns();
    while (idle_exit_ms) {
        usleep(50000);
        uint64_t r = atomic_load(&requests), now = now_ns();
        if (r != last) {
            last = r, idle_since = now;
        } else if (r && now - idle_since >= idle_exit_ms * 1000000ull) {
            break;
        }
    }
    atomic_store(&stop, 1);
    for (uint64_t i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
    }
    printf("udp-echo: requests=%llu\n", (unsigned long long)atomic_load(&requests));
    return 0;
}
