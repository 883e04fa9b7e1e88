// spin [THREADS [MS]]: THREADS threads (default 3) each burn the CPU for MS
// milliseconds (default 50), so only the timer's preemption lets them share
// it. Prints each thread's share; a fair round robin gives each about the
// same. The trace shows sched_preempt every time slice. Each line also says
// how many times the thread was switched in and on which CPUs it started and
// ended: once, on one CPU, when it had that CPU to itself all along.
#include <atomic>

#include "core/app.hh"
#include "core/console.hh"
#include "core/percpu.hh"
#include "core/thread.hh"
#include "cpu.hh"
#include "lib/printf.hh"
#include "lib/string.hh"
#include "tsc.hh"

namespace {

constexpr int max_threads = 16;

struct worker {
    uint64_t until;  // TSC
    uint64_t loops = 0;
    uint64_t first = 0, last = 0;  // TSC of its first and last loop
    uint64_t switched_in = 0;       // times the scheduler switched to it, counted at its end
    unsigned cpu_first = 0, cpu_last = 0;
    std::atomic<uint64_t>* recorded = nullptr;  // workers done counting, shared
    uint64_t n = 0;                             // workers in all
};

unsigned cpu_now()
{
    irq_guard g;
    return this_cpu()->id;
}

void burn(void* arg)
{
    auto* w = static_cast<worker*>(arg);
    w->first = tsc::now();
    w->cpu_first = cpu_now();
    // The clock is read every 256 loops: under multi-threaded TCG each rdtsc
    // takes a QEMU-wide lock, and with more vCPUs than host cores a loop of
    // rdtscs measures mostly that lock.
    uint64_t now;
    do {
        for (int i = 0; i < 256; i++) {
            asm volatile("" : : "r"(i) : "memory");
        }
        w->loops += 256;
    } while ((now = tsc::now()) < w->until);
    w->last = now;
    w->cpu_last = cpu_now();
    w->switched_in = threads::current()->nr_switches_in;
    // Nobody exits before every worker has counted: the first exit wakes the
    // joining main thread, which would otherwise take a CPU from a worker still
    // finishing its last loops and count as a second switch-in there.
    w->recorded->fetch_add(1, std::memory_order_acq_rel);
    while (w->recorded->load(std::memory_order_acquire) < w->n) {
        arch::cpu_relax();
    }
}

bool parse_arg(const char* s, uint64_t* v) { return parse_u64(s, strlen(s), v); }

int spin_main(int argc, char** argv)
{
    uint64_t n = 3, ms = 50;
    if (argc > 3 || (argc > 1 && !parse_arg(argv[1], &n)) || (argc > 2 && !parse_arg(argv[2], &ms)) ||
        n == 0 || n > max_threads) {
        kprintf("usage: spin [THREADS (1..%d) [MS]]\n", max_threads);
        return 2;
    }
    worker w[max_threads];
    thread* t[max_threads];
    std::atomic<uint64_t> recorded{0};
    const uint64_t until = tsc::now() + tsc::from_ns(ms * 1000000);
    for (uint64_t i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "spin%lu", i);
        w[i].until = until;
        w[i].recorded = &recorded;
        w[i].n = n;
        t[i] = threads::create(name, burn, &w[i]);
        if (!t[i]) {
            kprintf("spin: cannot create thread %lu\n", i);
            return 1;
        }
    }
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        threads::join(t[i]);
        total += w[i].loops;
    }
    for (uint64_t i = 0; i < n; i++) {
        kprintf("spin: thread %lu: %lu loops (%lu%%), ran from +%lu us to +%lu us, switched in %lu times, "
                "cpu %u to %u\n",
                i, w[i].loops, total ? w[i].loops * 100 / total : 0,
                tsc::to_us(w[i].first - (until - tsc::from_ns(ms * 1000000))),
                tsc::to_us(w[i].last - (until - tsc::from_ns(ms * 1000000))), w[i].switched_in, w[i].cpu_first,
                w[i].cpu_last);
    }
    return 0;
}

}  // namespace

REGISTER_APP(spin_app, "spin", "[THREADS [MS]]  CPU-bound threads sharing the CPU by preemption", spin_main);
