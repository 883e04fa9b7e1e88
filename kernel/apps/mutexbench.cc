// mutexbench uncontended [N] | handoff [N] [--same-cpu]
//
// uncontended: one thread locks and unlocks a free mutex N times; prints the
//   TSC ticks per lock+unlock pair.
// handoff: two threads pass one mutex back and forth N times. Each round the
//   holder waits until the other thread sleeps in lock(), stamps the TSC and
//   unlocks; the mutex is handed straight to the sleeper, which stamps the
//   TSC when lock() returns. Prints the unlock-to-running latency (average,
//   median, minimum, in TSC ticks, with the CPUs' measured TSC offsets
//   applied). The two threads run on CPUs 0 and 1 (or both on CPU 0 with
//   --same-cpu, which measures a hand-off plus a local context switch).
//
// Under TCG the TSC follows the host clock: compare ratios from one run, and
// say which TCG mode (single or multi-threaded) it ran in.
#include <atomic>

#include "core/app.hh"
#include "core/console.hh"
#include "core/heap.hh"
#include "core/mutex.hh"
#include "core/percpu.hh"
#include "core/thread.hh"
#include "lib/string.hh"
#include "trace/control.hh"
#include "tsc.hh"

namespace {

__attribute__((noinline)) uint64_t loop_uncontended(mutex& m, uint64_t n)
{
    uint64_t t0 = tsc::now();
    for (uint64_t i = 0; i < n; i++) {
        m.lock();
        m.unlock();
    }
    return tsc::now() - t0;
}

int uncontended(uint64_t n)
{
    mutex m;
    loop_uncontended(m, n / 10 + 1);  // warm up (TCG translates the loop once)
    uint64_t ticks = loop_uncontended(m, n);
    uint64_t tenths = (ticks * 10 + n / 2) / n;
    kprintf("mutexbench: uncontended lock+unlock ticks=%lu.%lu pairs=%lu tracing=%u\n", tenths / 10, tenths % 10, n,
            unsigned(trace::enabled[trace::tp_mutex_lock]));
    return 0;
}

struct handoff_state {
    mutex m;
    uint64_t rounds = 0;
    thread* side[2] = {};
    std::atomic<bool> go{false};     // both threads exist (each needs the other's pointer)
    std::atomic<bool> holding{false}; // side 0 owns the mutex: side 1 may start its first lock()
    bool same_cpu = false;
    uint64_t stamp_tsc = 0;  // written by the holder just before unlock
    uint32_t stamp_cpu = 0;
    uint64_t* samples = nullptr;
    uint64_t nsamples = 0, not_handed = 0;
};

handoff_state hs;

uint64_t stamp(uint32_t* cpu)
{
    irq_guard g;
    *cpu = this_cpu()->id;
    return tsc::now();
}

void wait_until_blocked(thread* other)
{
    while (other->state.load(std::memory_order_acquire) != thread_state::waiting) {
        if (hs.same_cpu) {
            threads::yield();
        } else {
            arch::cpu_relax();
        }
    }
}

void side(void* arg)
{
    const int me = int(reinterpret_cast<uintptr_t>(arg));
    if (me == 0) {
        hs.m.lock();  // side 0 holds first
        hs.holding.store(true, std::memory_order_release);
    }
    while (!hs.go.load(std::memory_order_acquire) || !hs.holding.load(std::memory_order_acquire)) {
        threads::yield();
    }
    thread* other = hs.side[1 - me];
    for (uint64_t k = 0; k < hs.rounds; k++) {
        if (int(k % 2) == me) {
            wait_until_blocked(other);
            hs.stamp_tsc = stamp(&hs.stamp_cpu);
            hs.m.unlock();
        } else {
            bool handed = hs.m.lock();
            uint32_t cpu;
            uint64_t now = stamp(&cpu);
            int64_t skew = osvtrace_control.tsc_offset[cpu] - osvtrace_control.tsc_offset[hs.stamp_cpu];
            if (handed) {
                hs.samples[hs.nsamples++] = uint64_t(int64_t(now - hs.stamp_tsc) - skew);
            } else {
                hs.not_handed++;
            }
        }
    }
    if (int((hs.rounds - 1) % 2) != me) {
        hs.m.unlock();  // the last round's receiver still holds it
    }
}

int handoff(uint64_t n, bool same_cpu)
{
    hs.rounds = n;
    hs.same_cpu = same_cpu || online_cpus() < 2;
    hs.samples = static_cast<uint64_t*>(malloc(n * sizeof(uint64_t)));
    if (!hs.samples) {
        kprintf("mutexbench: no memory for %lu samples\n", n);
        return 1;
    }
    hs.side[0] = threads::create_on(0, "handoff0", side, reinterpret_cast<void*>(0));
    hs.side[1] = threads::create_on(hs.same_cpu ? 0 : 1, "handoff1", side, reinterpret_cast<void*>(1));
    if (!hs.side[0] || !hs.side[1]) {
        kprintf("mutexbench: cannot create threads\n");
        return 1;
    }
    hs.go.store(true, std::memory_order_release);
    threads::join(hs.side[0]);
    threads::join(hs.side[1]);
    uint64_t* s = hs.samples;
    uint64_t k = hs.nsamples;
    // Insertion sort would be quadratic; a heap sort keeps it n log n in place.
    auto sift = [s](uint64_t i, uint64_t end) {
        for (uint64_t c; (c = 2 * i + 1) < end; i = c) {
            if (c + 1 < end && s[c + 1] > s[c]) {
                c++;
            }
            if (s[i] >= s[c]) {
                break;
            }
            uint64_t t = s[i];
            s[i] = s[c];
            s[c] = t;
        }
    };
    for (uint64_t i = k / 2; i-- > 0;) {
        sift(i, k);
    }
    for (uint64_t end = k; end > 1; end--) {
        uint64_t t = s[0];
        s[0] = s[end - 1];
        s[end - 1] = t;
        sift(0, end - 1);
    }
    uint64_t sum = 0;
    for (uint64_t i = 0; i < k; i++) {
        sum += s[i];
    }
    kprintf("mutexbench: handoff ticks avg=%lu median=%lu min=%lu p90=%lu n=%lu not_handed=%lu cpus=%s "
            "tsc_hz=%lu tracing=%u\n",
            k ? sum / k : 0, k ? s[k / 2] : 0, k ? s[0] : 0, k ? s[k * 9 / 10] : 0, k, hs.not_handed,
            hs.same_cpu ? "same" : "cross", tsc::hz, unsigned(trace::enabled[trace::tp_mutex_lock]));
    free(hs.samples);
    return hs.not_handed ? 1 : 0;
}

int mutexbench_main(int argc, char** argv)
{
    uint64_t n = 20000;
    bool same = false;
    const char* mode = argc > 1 ? argv[1] : "";
    int i = 2;
    if (argc > i && argv[i][0] != '-') {
        if (!parse_u64(argv[i], strlen(argv[i]), &n) || n < 2) {
            mode = "";
        }
        i++;
    }
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--same-cpu")) {
            same = true;
        } else {
            mode = "";
        }
    }
    if (!strcmp(mode, "uncontended")) {
        return uncontended(n);
    }
    if (!strcmp(mode, "handoff")) {
        return handoff(n, same);
    }
    kprintf("usage: mutexbench uncontended [N] | handoff [N] [--same-cpu]\n");
    return 2;
}

}  // namespace

REGISTER_APP(mutexbench_app, "mutexbench", "uncontended [N] | handoff [N] [--same-cpu]  mutex latency in TSC ticks",
             mutexbench_main);
