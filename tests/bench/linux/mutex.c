// mutex --threads T --mutexes M --iterations N --hold-ns H --think-ns K: the
// Linux side of kernel/apps/mutex.cc with the same work per acquisition. T
// threads each take one of M pthread mutexes (default type, picked with the
// same xorshift sequence) N times, bump an unprotected counter over the hold
// time, then think. A lock whose try_lock fails first counts as contended
// (glibc's lock does the same compare-and-swap first, so this adds no work).
// Prints "mutex: acquisitions=.. contended=.. lost_updates=.. elapsed_us=..
// rate=../s"; exits 1 on a lost update.
#include <pthread.h>
#include <unistd.h>

#include "common.h"

enum { max_threads = 64, max_mutexes = 64 };

struct slot {
    pthread_mutex_t m;
    volatile uint64_t counter;  // NOTE: unprotected on purpose: only m guards it
} __attribute__((aligned(64)));

static struct slot slots[max_mutexes];
static uint64_t threads = 4, mutexes = 1, iterations = 10000, hold_ns, think_ns, hold_loops, think_loops;
static pthread_mutex_t gate_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

struct worker {
    uint32_t index;
    uint64_t acquisitions, contended;
    pthread_t t;
};
static struct worker workers[max_threads];

static void* run(void* arg)
{
    struct worker* w = arg;
    pthread_mutex_lock(&gate_m);
    while (!gate_open) {
        pthread_cond_wait(&gate_cv, &gate_m);
    }
    pthread_mutex_unlock(&gate_m);
    uint64_t x = 0x9e3779b97f4a7c15ull * (w->index + 1);
    for (uint64_t i = 0; i < iterations; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        struct slot* s = &slots[x % mutexes];
        if (pthread_mutex_trylock(&s->m) != 0) {
            w->contended++;
            pthread_mutex_lock(&s->m);
        }
        uint64_t c = s->counter;
        busy_spin(hold_loops);
        s->counter = c + 1;
        w->acquisitions++;
        pthread_mutex_unlock(&s->m);
        busy_spin(think_loops);
    }
    return NULL;
}

int main(int argc, char** argv)
{
    struct option_u64 opts[] = {{"threads", &threads},   {"mutexes", &mutexes}, {"iterations", &iterations},
                                {"hold-ns", &hold_ns},   {"think-ns", &think_ns}};
    if (!parse_options(argc, argv, 1, opts, 5) || !threads || threads > max_threads || !mutexes ||
        mutexes > max_mutexes || !iterations) {
        fprintf(stderr, "usage: mutex --threads T --mutexes M --iterations N --hold-ns H --think-ns K\n");
        return 2;
    }
    uint64_t per_us = busy_loops_per_us();
    hold_loops = hold_ns * per_us / 1000;
    think_loops = think_ns * per_us / 1000;
    for (uint64_t i = 0; i < mutexes; i++) {
        pthread_mutex_init(&slots[i].m, NULL);
    }
    for (uint64_t i = 0; i < threads; i++) {
        workers[i].index = (uint32_t)i;
        if (pthread_create(&workers[i].t, NULL, run, &workers[i])) {
            fprintf(stderr, "mutex: cannot create thread %llu\n", (unsigned long long)i);
            return 1;
        }
    }
    uint64_t t0 = now_ns();
    pthread_mutex_lock(&gate_m);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_m);
    uint64_t acq = 0, contended = 0, counted = 0;
    for (uint64_t i = 0; i < threads; i++) {
        pthread_join(workers[i].t, NULL);
        acq += workers[i].acquisitions;
        contended += workers[i].contended;
    }
    uint64_t ns = now_ns() - t0;
    for (uint64_t i = 0; i < mutexes; i++) {
        counted += slots[i].counter;
    }
    uint64_t lost = threads * iterations - counted;
    printf("mutex: threads=%llu mutexes=%llu iterations=%llu hold_ns=%llu think_ns=%llu cpus=%ld\n",
           (unsigned long long)threads, (unsigned long long)mutexes, (unsigned long long)iterations,
           (unsigned long long)hold_ns, (unsigned long long)think_ns, sysconf(_SC_NPROCESSORS_ONLN));
    printf("mutex: acquisitions=%llu contended=%llu lost_updates=%llu elapsed_us=%llu rate=%llu/s\n",
           (unsigned long long)acq, (unsigned long long)contended, (unsigned long long)lost,
           (unsigned long long)(ns / 1000), (unsigned long long)(ns ? acq * 1000000000ull / ns : 0));
    return lost ? 1 : 0;
}
