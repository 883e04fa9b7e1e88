// alloc [--threads T] [--rounds N] [--leak L] [--naps K]: T threads each allocate and
// free N blocks of sizes cycling through the heap's classes (16 bytes .. a few pages,
// some not a power of two), keeping a few alive at a time so frees come out of order,
// and leak L blocks of 777 bytes on purpose. Prints the leaked addresses, so a
// test can check that `osvtrace report memory` finds exactly those as leaks.
// Then, with --naps, one thread pinned to each CPU sleeps 1 ms K times: every CPU
// goes idle and returns at least K times whatever the host's timing (the workers may
// keep both CPUs busy to the end), so idle reports always have periods to check.
#include "apps/options.hh"
#include "core/app.hh"
#include "core/console.hh"
#include "core/heap.hh"
#include "core/percpu.hh"
#include "core/thread.hh"

namespace {

constexpr size_t leak_size = 777;
constexpr int max_leaks = 16;
constexpr int max_threads = 8;
constexpr size_t sizes[] = {16, 24, 64, 100, 256, 500, 1024, 2048, 3000, 9000};
constexpr int max_cpus = 64;
constexpr int live = 7;  // blocks a thread keeps at once: frees lag allocations

struct work {
    uint64_t rounds, leaks;
    void* leaked[max_leaks];
};

void worker(void* arg)
{
    auto* w = static_cast<work*>(arg);
    void* held[live] = {};
    for (uint64_t i = 0; i < w->rounds; i++) {
        free(held[i % live]);  // free(nullptr) is a no-op: the first turns free nothing
        held[i % live] = malloc(sizes[i % (sizeof sizes / sizeof sizes[0])]);
    }
    for (void*& p : held) {
        free(p);
        p = nullptr;
    }
    for (uint64_t i = 0; i < w->leaks; i++) {
        w->leaked[i] = malloc(leak_size);
    }
}

void napper(void* arg)
{
    for (uint64_t i = 0, n = *static_cast<uint64_t*>(arg); i < n; i++) {
        threads::sleep_ns(1000000);  // alone on its CPU: the CPU idles until the timer wakes it
    }
}

int alloc_main(int argc, char** argv)
{
    uint64_t nthreads = 2, rounds = 1000, leaks = 3, naps = 0;
    app_option opts[] = {{"threads", &nthreads, 1, max_threads}, {"rounds", &rounds, 1, 10000000},
                         {"leak", &leaks, 0, max_leaks}, {"naps", &naps, 0, 1000}};
    if (!parse_app_options(argc, argv, opts, "alloc")) {
        return 2;
    }
    static work w[max_threads];
    thread* t[max_threads];
    for (uint64_t i = 0; i < nthreads; i++) {
        w[i].rounds = rounds;
        w[i].leaks = leaks;
        t[i] = threads::create("allocer", worker, &w[i], 16 * 1024);
        if (!t[i]) {
            kprintf("alloc: thread create failed\n");
            return 1;
        }
    }
    for (uint64_t i = 0; i < nthreads; i++) {
        threads::join(t[i]);
    }
    kprintf("alloc: threads=%lu rounds=%lu leaked=%lu size=%lu addresses=", nthreads, rounds, nthreads * leaks,
            leak_size);
    for (uint64_t i = 0; i < nthreads; i++) {
        for (uint64_t k = 0; k < leaks; k++) {
            kprintf("%s%p", i || k ? "," : "", w[i].leaked[k]);
        }
    }
    kprintf("\n");
    unsigned ncpus = online_cpus() < max_cpus ? online_cpus() : max_cpus;
    thread* nap[max_cpus];
    for (unsigned c = 0; naps && c < ncpus; c++) {
        nap[c] = threads::create_on(c, "napper", napper, &naps, 16 * 1024);
        if (!nap[c]) {
            kprintf("alloc: thread create failed\n");
            return 1;
        }
    }
    for (unsigned c = 0; naps && c < ncpus; c++) {
        threads::join(nap[c]);
    }
    return 0;
}

}  // namespace

REGISTER_APP(alloc_app, "alloc", "[--threads T] [--rounds N] [--leak L] [--naps K]  allocate, free, leak L blocks; idle every CPU K times",
             alloc_main);
