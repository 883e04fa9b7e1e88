// lhp [--threads T] [--mutexes M] [--hold-us H] [--think-us K] [--duration-ms D]
//     [--until-preempted N [--max-ms C]]
//
// Lock-holder preemption on purpose: more runnable threads than CPUs
// (default 2 x CPUs + 1), each taking one of M mutexes (default 2), holding
// it for H us (default 2000, half the 4 ms time slice) and thinking K us
// (default 4000, on the CPU: the threads stay runnable) in a loop for D ms
// (default 300). A time slice often ends inside a critical section; the
// holder is preempted and the waiters sleep until it runs again. A trace shows it as long
// mutex_lock_wait records overlapping a sched_preempt of the holder.
//
// Whether a slice ends inside a hold is up to timing (how the host runs the
// vCPUs, the load beside it: 0 preempted holds in 200 ms happened in ~1 run of
// 6, 3 of 8 on a loaded host). --until-preempted N makes it certain instead of
// likely: past D ms the threads carry on until N holds were preempted in all,
// for at most C ms in all (default 60000), and the line says how long it took.
//
// Prints `lhp: threads=.. cpus=.. acquisitions=.. preempted_holds=..
// max_hold_us=.. lost_updates=0 violations=0 ran_ms=..`: a preempted hold is one
// during which the holder was switched out. Exits 1 on a lost update or
// violation, or when --until-preempted N was not reached within C ms.
#include <atomic>

#include "apps/busy.hh"
#include "apps/options.hh"
#include "core/app.hh"
#include "core/console.hh"
#include "core/mutex.hh"
#include "core/percpu.hh"
#include "core/thread.hh"
#include "lib/printf.hh"
#include "tsc.hh"

namespace {

constexpr uint64_t max_threads = 64, max_mutexes = 16;

struct alignas(64) slot {
    mutex m;
    volatile uint64_t counter = 0;  // unprotected: only m guards it
    volatile uint32_t inside = 0;
};

struct shared {
    slot slots[max_mutexes];
    uint64_t mutexes, hold_loops, think_loops, deadline;
    uint64_t until_preempted, cap;  // past deadline: until this many preempted holds, up to cap (TSC)
    std::atomic<uint64_t> preempted{0};  // preempted holds so far, all threads
};

// Whether the threads carry on: before the deadline always; after it while
// --until-preempted is not reached and the cap not passed.
bool going(shared* s)
{
    uint64_t now = tsc::now();
    return now < s->deadline ||
           (s->preempted.load(std::memory_order_relaxed) < s->until_preempted && now < s->cap);
}

struct worker {
    shared* s;
    uint32_t index;
    uint64_t acquisitions = 0, preempted = 0, violations = 0, max_hold = 0;
};

void run(void* arg)
{
    auto* w = static_cast<worker*>(arg);
    shared* s = w->s;
    thread* self = threads::current();
    uint64_t x = 0x2545f4914f6cdd1dull * (w->index + 1);
    while (going(s)) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        slot& sl = s->slots[x % s->mutexes];
        sl.m.lock();
        uint64_t switches = self->nr_switches_in;
        uint64_t t0 = tsc::now();
        uint32_t occupied = sl.inside;
        sl.inside = occupied + 1;
        w->violations += occupied != 0;
        uint64_t c = sl.counter;
        busy::spin(s->hold_loops);
        sl.counter = c + 1;
        sl.inside = sl.inside - 1;
        uint64_t held = tsc::now() - t0;
        w->max_hold = held > w->max_hold ? held : w->max_hold;
        if (self->nr_switches_in != switches) {
            w->preempted++;
            s->preempted.fetch_add(1, std::memory_order_relaxed);
        }
        w->acquisitions++;
        sl.m.unlock();
        busy::spin(s->think_loops);
    }
}

int lhp_main(int argc, char** argv)
{
    uint64_t nthreads = 2 * online_cpus() + 1, mutexes = 2, hold_us = 2000, think_us = 4000, duration_ms = 300;
    uint64_t until_preempted = 0, max_ms = 60000;
    app_option opts[] = {
        {"threads", &nthreads, 1, max_threads},   {"mutexes", &mutexes, 1, max_mutexes},
        {"hold-us", &hold_us, 0, 1000000},        {"think-us", &think_us, 0, 1000000},
        {"duration-ms", &duration_ms, 1, 600000}, {"until-preempted", &until_preempted, 0, 1000000},
        {"max-ms", &max_ms, 1, 600000},
    };
    if (!parse_app_options(argc, argv, opts, "lhp")) {
        kprintf("usage: lhp [--threads T] [--mutexes M] [--hold-us H] [--think-us K] [--duration-ms D] "
                "[--until-preempted N [--max-ms C]]\n");
        return 2;
    }
    static shared s;
    static worker workers[max_threads];
    static thread* ts[max_threads];
    uint64_t per_us = busy::loops_per_us();
    s.mutexes = mutexes;
    s.hold_loops = hold_us * per_us;
    s.think_loops = think_us * per_us;
    const uint64_t start = tsc::now();
    s.deadline = start + tsc::from_ns(duration_ms * 1000000);
    s.until_preempted = until_preempted;
    s.cap = start + tsc::from_ns(max_ms * 1000000);
    for (uint64_t i = 0; i < nthreads; i++) {
        workers[i] = worker{};
        workers[i].s = &s;
        workers[i].index = uint32_t(i);
        char name[16];
        snprintf(name, sizeof name, "lhp%lu", i);
        if (!(ts[i] = threads::create(name, run, &workers[i]))) {
            kprintf("lhp: cannot create thread %lu\n", i);
            return 1;
        }
    }
    uint64_t acq = 0, pre = 0, viol = 0, max_hold = 0, counted = 0;
    for (uint64_t i = 0; i < nthreads; i++) {
        threads::join(ts[i]);
        acq += workers[i].acquisitions;
        pre += workers[i].preempted;
        viol += workers[i].violations;
        max_hold = workers[i].max_hold > max_hold ? workers[i].max_hold : max_hold;
    }
    for (uint64_t i = 0; i < mutexes; i++) {
        counted += s.slots[i].counter;
    }
    uint64_t lost = acq - counted;
    const uint64_t ran_ms = tsc::to_us(tsc::now() - start) / 1000;
    kprintf("lhp: threads=%lu cpus=%u mutexes=%lu hold_us=%lu acquisitions=%lu preempted_holds=%lu max_hold_us=%lu "
            "lost_updates=%lu violations=%lu ran_ms=%lu\n",
            nthreads, online_cpus(), mutexes, hold_us, acq, pre, tsc::to_us(max_hold), lost, viol, ran_ms);
    if (pre < until_preempted) {
        kprintf("lhp: only %lu preempted holds in %lu ms (--until-preempted %lu, --max-ms %lu)\n", pre, ran_ms,
                until_preempted, max_ms);
        return 1;
    }
    return lost || viol ? 1 : 0;
}

}  // namespace

REGISTER_APP(lhp_app, "lhp", "[--threads T] [--mutexes M] [--hold-us H] [--think-us K] [--duration-ms D] "
             "[--until-preempted N [--max-ms C]]  "
             "lock-holder preemption on purpose", lhp_main);
