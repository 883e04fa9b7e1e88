// alloc [--threads T] [--rounds N] [--leak L]: T threads each allocate and free N
// blocks of sizes cycling through the heap's classes (16 bytes .. a few pages, some
// not a power of two), keeping a few alive at a time so frees come out of order,
// and leak L blocks of 777 bytes on purpose. Prints the leaked addresses, so a
// test can check that `osvtrace report memory` finds exactly those as leaks.
#include "apps/options.hh"
#include "core/app.hh"
#include "core/console.hh"
#include "core/heap.hh"
#include "core/thread.hh"

namespace {

constexpr size_t leak_size = 777;
constexpr int max_leaks = 16;
constexpr int max_threads = 8;
constexpr size_t sizes[] = {16, 24, 64, 100, 256, 500, 1024, 2048, 3000, 9000};
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

int alloc_main(int argc, char** argv)
{
    uint64_t nthreads = 2, rounds = 1000, leaks = 3;
    app_option opts[] = {{"threads", &nthreads, 1, max_threads}, {"rounds", &rounds, 1, 10000000},
                         {"leak", &leaks, 0, max_leaks}};
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
    return 0;
}

}  // namespace

REGISTER_APP(alloc_app, "alloc", "[--threads T] [--rounds N] [--leak L]  allocate, free, leak L blocks",
             alloc_main);
