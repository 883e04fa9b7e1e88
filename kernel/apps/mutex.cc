// mutex --threads T --mutexes M --iterations N --hold-ns H --think-ns K
//       [--trylock PCT] [--pin 0|1] [--latency 0|1] [--yield-every Y] [--slow-mutex S]
//       [--heap 0|1]
//
// T threads each take one of M mutexes (picked at random) N times, hold it
// for H ns, then think for K ns. Inside the critical section each bumps a
// plain, unprotected counter of that mutex with a read ... write spread over
// the hold time, and marks the section occupied: a second owner shows up as
// a lost update or a violation. PCT% of acquisitions try try_lock() first.
// --pin 1 pins thread i to CPU i mod ncpus; --latency 1 measures each
// hand-off, unlock to the waiter running (TSC ticks, offsets applied).
// --yield-every Y: every Y-th acquisition of a thread, it yields the CPU while
// holding the mutex, and keeps yielding until another thread waits for it (while
// any other is still working; at most 200 ms), so the others run into it held:
// contention and hand-offs then happen by construction, on one CPU too, whatever
// the host's timing, not only when a time slice happens to end inside a hold.
// --slow-mutex S: mutex S (1..M) is held twice as long as the others (a known
// regression for `osvtrace diff` to find).
// --heap 1: the mutexes live in one heap block (malloc) instead of static
// storage, so they have no symbol: the trace names them by their allocation.
//
// Prints one parseable line (tests read it):
//   mutex: threads=.. mutexes=.. iterations=.. acquisitions=.. handoffs=.. contended=..
//   trylocks=.. lost_updates=0 violations=0 elapsed_us=.. rate=../s contended_pct=..
// and `mutex: addresses=0x..,0x..` (to pick the app's mutexes out of a trace).
// Exits 1 on any lost update or violation.
#include <atomic>
#include <new>

#include "apps/busy.hh"
#include "apps/options.hh"
#include "core/app.hh"
#include "core/console.hh"
#include "core/heap.hh"
#include "core/mutex.hh"
#include "core/percpu.hh"
#include "core/thread.hh"
#include "lib/printf.hh"
#include "trace/control.hh"
#include "tsc.hh"

namespace {

constexpr uint64_t max_threads = 64, max_mutexes = 64;

struct alignas(64) slot {
    mutex m;
    volatile uint64_t counter = 0;  // NOTE: unprotected on purpose: only m guards it
    volatile uint32_t inside = 0;
    uint64_t unlock_tsc = 0;  // when the last owner unlocked (for --latency)
    uint32_t unlock_cpu = 0;
};

struct config {
    uint64_t threads = 4, mutexes = 1, iterations = 10000, hold_ns = 0, think_ns = 0, trylock = 0, pin = 0,
             latency = 0, yield_every = 0, slow_mutex = 0, heap = 0;
    uint64_t hold_loops = 0, think_loops = 0;
};

std::atomic<uint32_t> working{0};  // threads that have not finished their iterations

struct gate {
    mutex m;
    condvar cv;
    bool open = false;
};

struct worker {
    const config* cfg;
    slot* slots;
    gate* start;
    uint32_t index;
    uint64_t acquisitions = 0, handoffs = 0, trylocks = 0, violations = 0;
    uint64_t lat_n = 0, lat_sum = 0, lat_min = ~uint64_t(0), lat_max = 0;
};

uint64_t stamp(uint32_t* cpu_out)
{
    irq_guard g;  // the CPU and its TSC read together
    *cpu_out = this_cpu()->id;
    return tsc::now();
}

void run(void* arg)
{
    auto* w = static_cast<worker*>(arg);
    const config& cfg = *w->cfg;
    w->start->m.lock();
    while (!w->start->open) {
        w->start->cv.wait(w->start->m);
    }
    w->start->m.unlock();

    uint64_t x = 0x9e3779b97f4a7c15ull * (w->index + 1);
    for (uint64_t i = 0; i < cfg.iterations; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        slot& s = w->slots[x % cfg.mutexes];
        bool handed = false;
        if (cfg.trylock && (x >> 40) % 100 < cfg.trylock && s.m.try_lock()) {
            w->trylocks++;
        } else {
            handed = s.m.lock();
        }
        if (handed && cfg.latency) {
            uint32_t cpu;
            uint64_t now = stamp(&cpu);
            int64_t skew = osvtrace_control.tsc_offset[cpu] - osvtrace_control.tsc_offset[s.unlock_cpu];
            uint64_t lat = uint64_t(int64_t(now - s.unlock_tsc) - skew);
            w->lat_n++;
            w->lat_sum += lat;
            w->lat_min = lat < w->lat_min ? lat : w->lat_min;
            w->lat_max = lat > w->lat_max ? lat : w->lat_max;
        }
        uint32_t occupied = s.inside;
        s.inside = occupied + 1;
        if (occupied) {
            w->violations++;
        }
        uint64_t c = s.counter;
        busy::spin(cfg.slow_mutex && &s == &w->slots[cfg.slow_mutex - 1] ? 2 * cfg.hold_loops : cfg.hold_loops);
        if (cfg.yield_every && i % cfg.yield_every == cfg.yield_every - 1) {
            // Still holding: whoever runs now and picks this mutex waits for it. One yield
            // was not enough on a loaded host (the others had not reached the mutex yet, or
            // their vCPU was not running): wait for a waiter, bounded.
            uint64_t give_up = tsc::now() + tsc::from_ns(200000000);
            do {
                threads::yield();
            } while (s.m.count() < 2 && working.load(std::memory_order_relaxed) > 1 && tsc::now() < give_up);
        }
        s.counter = c + 1;
        s.inside = s.inside - 1;
        w->acquisitions++;
        w->handoffs += handed;
        if (cfg.latency) {
            s.unlock_tsc = stamp(&s.unlock_cpu);
        }
        s.m.unlock();
        busy::spin(cfg.think_loops);
    }
    working.fetch_sub(1, std::memory_order_relaxed);
}

int mutex_main(int argc, char** argv)
{
    config cfg;
    app_option opts[] = {
        {"threads", &cfg.threads, 1, max_threads},     {"mutexes", &cfg.mutexes, 1, max_mutexes},
        {"iterations", &cfg.iterations, 1, 1ull << 40}, {"hold-ns", &cfg.hold_ns, 0, 1000000000},
        {"think-ns", &cfg.think_ns, 0, 1000000000},    {"trylock", &cfg.trylock, 0, 100},
        {"pin", &cfg.pin, 0, 1},                       {"latency", &cfg.latency, 0, 1},
        {"yield-every", &cfg.yield_every, 0, 1ull << 40}, {"slow-mutex", &cfg.slow_mutex, 0, max_mutexes},
        {"heap", &cfg.heap, 0, 1},
    };
    if (!parse_app_options(argc, argv, opts, "mutex")) {
        kprintf("usage: mutex --threads T --mutexes M --iterations N --hold-ns H --think-ns K [--trylock PCT] "
                "[--pin 0|1] [--latency 0|1] [--yield-every Y] [--slow-mutex S] [--heap 0|1]\n");
        return 2;
    }
    if (cfg.slow_mutex > cfg.mutexes) {
        kprintf("mutex: --slow-mutex %lu: there are %lu mutexes\n", cfg.slow_mutex, cfg.mutexes);
        return 2;
    }
    uint64_t per_us = busy::loops_per_us();
    cfg.hold_loops = busy::loops_for_ns(cfg.hold_ns, per_us);
    cfg.think_loops = busy::loops_for_ns(cfg.think_ns, per_us);

    static slot slots[max_mutexes];  // NOTE: named in tests and docs as mutex_main::slots[i].m
    slot* in_use = slots;
    if (cfg.heap) {
        void* block = malloc(sizeof(slot) * cfg.mutexes + alignof(slot));
        if (!block) {
            kprintf("mutex: out of memory for the mutexes\n");
            return 1;
        }
        auto* aligned = reinterpret_cast<slot*>((uintptr_t(block) + alignof(slot) - 1) & ~uintptr_t(alignof(slot) - 1));
        for (uint64_t i = 0; i < cfg.mutexes; i++) {
            new (&aligned[i]) slot;
        }
        in_use = aligned;
    }
    static worker workers[max_threads];
    static thread* ts[max_threads];
    gate start;
    working.store(uint32_t(cfg.threads), std::memory_order_relaxed);
    for (uint64_t i = 0; i < cfg.threads; i++) {
        workers[i] = worker{};
        workers[i].cfg = &cfg;
        workers[i].slots = in_use;
        workers[i].start = &start;
        workers[i].index = uint32_t(i);
        char name[16];
        snprintf(name, sizeof name, "mutex%lu", i);
        ts[i] = cfg.pin ? threads::create_on(unsigned(i), name, run, &workers[i])
                        : threads::create(name, run, &workers[i]);
        if (!ts[i]) {
            kprintf("mutex: cannot create thread %lu\n", i);
            return 1;
        }
    }
    uint64_t t0 = tsc::now();
    start.m.lock();
    start.open = true;
    start.cv.wake_all();
    start.m.unlock();
    worker sum;
    for (uint64_t i = 0; i < cfg.threads; i++) {
        threads::join(ts[i]);
        const worker& w = workers[i];
        sum.acquisitions += w.acquisitions;
        sum.handoffs += w.handoffs;
        sum.trylocks += w.trylocks;
        sum.violations += w.violations;
        sum.lat_n += w.lat_n;
        sum.lat_sum += w.lat_sum;
        sum.lat_min = w.lat_min < sum.lat_min ? w.lat_min : sum.lat_min;
        sum.lat_max = w.lat_max > sum.lat_max ? w.lat_max : sum.lat_max;
    }
    uint64_t elapsed_ns = tsc::to_ns(tsc::now() - t0);
    uint64_t counted = 0;
    bool left_locked = false;
    for (uint64_t i = 0; i < cfg.mutexes; i++) {
        counted += in_use[i].counter;
        left_locked |= in_use[i].m.count() != 0 || in_use[i].m.owner() != nullptr;
    }
    const uint64_t expected = cfg.threads * cfg.iterations;
    const uint64_t lost = expected - counted;
    uint64_t rate = elapsed_ns ? sum.acquisitions * 1000000000ull / elapsed_ns : 0;
    uint64_t pct100 = sum.acquisitions ? sum.handoffs * 10000 / sum.acquisitions : 0;
    kprintf("mutex: threads=%lu mutexes=%lu iterations=%lu hold_ns=%lu think_ns=%lu cpus=%u\n", cfg.threads,
            cfg.mutexes, cfg.iterations, cfg.hold_ns, cfg.think_ns, online_cpus());
    kprintf("mutex: acquisitions=%lu handoffs=%lu contended=%lu trylocks=%lu lost_updates=%lu violations=%lu "
            "elapsed_us=%lu rate=%lu/s contended_pct=%lu.%02lu\n",
            sum.acquisitions, sum.handoffs, sum.handoffs, sum.trylocks, lost, sum.violations, elapsed_ns / 1000,
            rate, pct100 / 100, pct100 % 100);
    if (cfg.latency && sum.lat_n) {
        kprintf("mutex: handoff_latency_ticks avg=%lu min=%lu max=%lu n=%lu\n", sum.lat_sum / sum.lat_n,
                sum.lat_min, sum.lat_max, sum.lat_n);
    }
    char line[64 * 20];
    size_t k = 0;
    for (uint64_t i = 0; i < cfg.mutexes && k < sizeof line; i++) {
        k += snprintf(line + k, sizeof line - k, "%s%p", i ? "," : "", static_cast<void*>(&in_use[i].m));
    }
    kprintf("mutex: addresses=%s\n", line);
    if (lost || sum.violations || left_locked || sum.acquisitions != expected) {
        kprintf("mutex: FAILED: %lu lost updates, %lu violations%s\n", lost, sum.violations,
                left_locked ? ", a mutex was left locked" : "");
        return 1;
    }
    return 0;
}

}  // namespace

REGISTER_APP(mutex_app, "mutex",
             "--threads T --mutexes M --iterations N --hold-ns H --think-ns K [--trylock PCT] [--pin 0|1] "
             "[--latency 0|1] [--yield-every Y]  lock-free mutex stress and rate",
             mutex_main);
