// tpstorm [--rate R] [--seconds S] [--threads T] [--burst N --gap MS]:
// a tracepoint storm for the streaming benchmarks and loss tests. T threads
// (default: one per CPU, pinned round robin) emit trace_marker records, R per second in total
// (0: as fast as they can), between units of work: the work rate is the
// app's own figure of how much tracing slows it down. With --burst, each
// thread emits N records back to back, then sleeps MS milliseconds.
//
// Prints what it emitted per CPU ("tpstorm: cpu C emitted N"), so the host
// can check emitted == decoded + lost exactly, per CPU: the threads are pinned,
// so each one's records all go to its own CPU's ring.
#include "core/app.hh"
#include "core/console.hh"
#include "core/percpu.hh"
#include "core/thread.hh"
#include "cpu.hh"
#include "generated/tracepoints.hh"
#include "lib/printf.hh"
#include "lib/string.hh"
#include "trace/control.hh"
#include "tsc.hh"

namespace {

constexpr unsigned max_threads = 64;
constexpr uint64_t batch = 1024;    // records between two looks at the clock
constexpr unsigned work_iters = 64;  // one unit of work
// Units of work between two looks at the clock. NOTE: under multi-threaded TCG
// every rdtsc takes one global lock in QEMU (cpu_get_ticks), so two vCPUs
// reading the clock often slow each other down; the app reads it sparingly.
constexpr unsigned units_per_look = 8;

struct config {
    uint64_t rate = 0;
    uint64_t ms = 1000;
    uint64_t burst = 0;
    uint64_t gap_ms = 10;
    unsigned threads = 0;
};

struct alignas(128) worker {  // NOTE: a line (pair) of its own: no false sharing between CPUs
    const config* cfg;
    unsigned index;
    unsigned cpu;       // where it is pinned
    uint64_t seq = 0;   // records emitted
    uint64_t units = 0;
    uint64_t sink = 0;
};

// NOTE: the flag test repeats the emitter's own, so a record is counted exactly
// when it is written (or dropped, and counted lost, by a full ring).
inline void emit(worker* w)
{
    if (trace::enabled[trace::tp_trace_marker]) {
        trace_trace_marker(w->seq++, "tpstorm");
    }
}

// Work the compiler cannot drop: an LCG step chain.
__attribute__((noinline)) uint64_t work_unit(uint64_t x)
{
    for (unsigned i = 0; i < work_iters; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        asm volatile("" : "+r"(x));
    }
    return x;
}

void run(void* arg)
{
    auto* w = static_cast<worker*>(arg);
    const config& c = *w->cfg;
    const uint64_t t0 = tsc::now();
    const uint64_t end = t0 + tsc::from_ns(c.ms * 1000000);
    const uint64_t rate = c.rate / c.threads + (w->index < c.rate % c.threads ? 1 : 0);
    uint64_t emitted = 0;
    for (;;) {
        uint64_t now = tsc::now();
        if (now >= end) {
            break;
        }
        if (c.burst) {
            for (uint64_t i = 0; i < c.burst; i++) {
                emit(w);
            }
            threads::sleep_ns(c.gap_ms * 1000000);
            continue;
        }
        uint64_t n = batch;
        if (rate) {
            uint64_t due = rate * tsc::to_ns(now - t0) / 1000000000ull;
            n = due > emitted ? due - emitted : 0;
            n = n < batch ? n : batch;
        }
        for (uint64_t i = 0; i < n; i++) {
            emit(w);
        }
        emitted += n;
        for (unsigned k = 0; k < units_per_look; k++) {
            w->sink = work_unit(w->sink + 1);
        }
        w->units += units_per_look;
    }
}

bool arg_u64(int argc, char** argv, int* i, uint64_t* out)
{
    if (*i + 1 >= argc) {
        return false;
    }
    ++*i;
    return parse_u64(argv[*i], strlen(argv[*i]), out);
}

int tpstorm_main(int argc, char** argv)
{
    config c;
    uint64_t seconds = 1, threads_arg = 0;
    bool ms_given = false;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        bool ok = false;
        if (!strcmp(a, "--rate")) {
            ok = arg_u64(argc, argv, &i, &c.rate);
        } else if (!strcmp(a, "--seconds")) {
            ok = arg_u64(argc, argv, &i, &seconds);
        } else if (!strcmp(a, "--ms")) {
            ok = arg_u64(argc, argv, &i, &c.ms);
            ms_given = true;
        } else if (!strcmp(a, "--threads")) {
            ok = arg_u64(argc, argv, &i, &threads_arg) && threads_arg >= 1 && threads_arg <= max_threads;
        } else if (!strcmp(a, "--burst")) {
            ok = arg_u64(argc, argv, &i, &c.burst) && c.burst > 0;
        } else if (!strcmp(a, "--gap")) {
            ok = arg_u64(argc, argv, &i, &c.gap_ms);
        }
        if (!ok) {
            kprintf("usage: tpstorm [--rate R] [--seconds S | --ms MS] [--threads T] [--burst N [--gap MS]]\n");
            return 2;
        }
    }
    if (!ms_given) {
        c.ms = seconds * 1000;
    }
    unsigned ncpus = online_cpus();
    c.threads = threads_arg ? unsigned(threads_arg) : (ncpus ? ncpus : 1);
    static worker workers[max_threads];
    thread* ts[max_threads] = {};
    uint64_t t0 = tsc::now();
    for (unsigned i = 0; i < c.threads; i++) {
        workers[i] = worker{};
        workers[i].cfg = &c;
        workers[i].index = i;
        workers[i].cpu = i % ncpus;
        char name[24];
        snprintf(name, sizeof name, "storm-%u", i);
        ts[i] = threads::create_on(workers[i].cpu, name, run, &workers[i]);  // one per CPU, pinned
        if (!ts[i]) {
            kprintf("tpstorm: cannot create thread %u\n", i);
            return 1;
        }
    }
    for (unsigned i = 0; i < c.threads; i++) {
        threads::join(ts[i]);
    }
    uint64_t ns = tsc::to_ns(tsc::now() - t0);
    uint64_t total = 0, units = 0;
    for (unsigned cpu = 0; cpu < trace::max_cpus; cpu++) {
        uint64_t n = 0;
        for (unsigned i = 0; i < c.threads; i++) {
            n += workers[i].cpu == cpu ? workers[i].seq : 0;
        }
        if (n || cpu < ncpus) {
            kprintf("tpstorm: cpu %u emitted %lu\n", cpu, n);
        }
        total += n;
    }
    for (unsigned i = 0; i < c.threads; i++) {
        units += workers[i].units;
    }
    uint64_t us = ns / 1000 ? ns / 1000 : 1;
    kprintf("tpstorm: %u threads, %lu events in %lu ms: %lu events/s, work %lu units/s\n", c.threads, total,
            ns / 1000000, total * 1000000 / us, units * 1000000 / us);
    return 0;
}

}  // namespace

REGISTER_APP(tpstorm_app, "tpstorm", "[--rate R] [--seconds S] [--threads T] [--burst N --gap MS]  tracepoint storm",
             tpstorm_main);
