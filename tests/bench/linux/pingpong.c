// pingpong MODE N: two threads pass a token back and forth N times each way,
// the Linux side of kernel/apps/pingpong.cc. MODE futex: each thread sleeps in
// futex(FUTEX_WAIT) on the turn word and the other wakes it with FUTEX_WAKE
// (the cheapest blocking hand-off Linux has); MODE condvar: a pthread mutex
// and one condition variable per player (what portable code does).
// Prints "pingpong: mode=.. passes=.. elapsed_ns=.. ns_per_pass=..", where a
// pass is one hand-off (2N in all): the figure compared with ours.
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

static uint64_t rounds;
static _Atomic int turn;  // whose move it is
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv[2] = {PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

static void* play_futex(void* arg)
{
    const int me = (int)(intptr_t)arg, other = 1 - me;
    for (uint64_t i = 0; i < rounds; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != me) {
            syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, other, NULL, NULL, 0);
        }
        atomic_store_explicit(&turn, other, memory_order_release);
        syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    return NULL;
}

static void* play_condvar(void* arg)
{
    const int me = (int)(intptr_t)arg, other = 1 - me;
    for (uint64_t i = 0; i < rounds; i++) {
        pthread_mutex_lock(&lock);
        while (atomic_load(&turn) != me) {
            pthread_cond_wait(&cv[me], &lock);
        }
        atomic_store(&turn, other);
        pthread_cond_signal(&cv[other]);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(int argc, char** argv)
{
    if (argc != 3 || (strcmp(argv[1], "futex") && strcmp(argv[1], "condvar")) || !(rounds = strtoull(argv[2], 0, 10))) {
        fprintf(stderr, "usage: pingpong futex|condvar N\n");
        return 2;
    }
    void* (*play)(void*) = strcmp(argv[1], "futex") == 0 ? play_futex : play_condvar;
    pthread_t a, b;
    uint64_t t0 = now_ns();
    if (pthread_create(&a, NULL, play, (void*)0) || pthread_create(&b, NULL, play, (void*)1)) {
        fprintf(stderr, "pingpong: cannot create threads\n");
        return 1;
    }
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    uint64_t ns = now_ns() - t0;
    printf("pingpong: mode=%s passes=%llu elapsed_ns=%llu ns_per_pass=%llu\n", argv[1],
           (unsigned long long)(2 * rounds), (unsigned long long)ns, (unsigned long long)(ns / (2 * rounds)));
    return 0;
}
