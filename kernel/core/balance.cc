// Where threads go: placement of new threads, moving a woken thread to an
// idle CPU, and giving queued threads away. Deliberately simple: counts of
// threads per CPU, no history; see docs/design.md (Kernel) for the rules.
//
// NOTE: only a thread that is off every CPU and every queue may change home
// (rehome), and every run-queue change happens on its owning CPU.
#include "core/percpu.hh"
#include "core/sched.hh"
#include "core/sched_impl.hh"
#include "generated/tracepoints.hh"
#include "interrupts.hh"
#include "tsc.hh"

namespace sched::impl {
namespace {

// An idle CPU asks a busy one for work at most this often (TSC ticks, set at
// init): each request costs the busy CPU an interrupt.
uint64_t work_request_gap;
constexpr uint64_t work_request_gap_ns = 200000;

}  // namespace

void init_balance()
{
    if (!work_request_gap) {
        work_request_gap = tsc::from_ns(work_request_gap_ns);
    }
}

// What balancing compares: threads running or waiting to run on c.
uint32_t load(cpu* c)
{
    return c->nr_queued.load(std::memory_order_relaxed) + c->nr_incoming.load(std::memory_order_relaxed) +
           (c->idle_now.load(std::memory_order_relaxed) ? 0 : 1);
}

// Moves t's home from one CPU to another (t is on no run queue and off every
// CPU, and nobody else may move it now).
void rehome(thread* t, cpu* from, cpu* to)
{
    from->nr_homed.fetch_sub(1, std::memory_order_relaxed);
    to->nr_homed.fetch_add(1, std::memory_order_relaxed);
    t->home = to;
    trace_sched_migrate(t->id, uint16_t(from->id), uint16_t(to->id));
}

// An idle CPU with nothing on its way to it, other than `not_this`; scanning
// from after `from` so wakers spread over the idle CPUs.
cpu* find_idle(cpu* from, cpu* not_this)
{
    const unsigned n = online_cpus();
    for (unsigned k = 1; k <= n; k++) {
        cpu* d = cpus[(from->id + k) % n];
        if (d != not_this && d->idle_now.load(std::memory_order_relaxed) &&
            !d->nr_queued.load(std::memory_order_relaxed) && !d->nr_incoming.load(std::memory_order_relaxed)) {
            return d;
        }
    }
    return nullptr;
}

// Gives one queued thread to the least loaded CPU if that evens things out.
// Runs on c with interrupts off, never in the middle of a switch: every
// thread on c's run queue is fully switched out, so another CPU may run it.
void balance(cpu* c)
{
    c->need_balance.store(false, std::memory_order_relaxed);
    thread* t = c->runqueue.back();
    while (t && t->pinned) {
        t = c->runqueue.prev(t);
    }
    if (!t) {
        return;
    }
    cpu* best = nullptr;
    uint32_t best_load = ~0u;
    const unsigned n = online_cpus();
    for (unsigned i = 0; i < n; i++) {
        cpu* d = cpus[i];
        uint32_t l = load(d);
        if (d != c && l < best_load) {
            best = d;
            best_load = l;
        }
    }
    uint32_t mine = uint32_t(c->runqueue.size()) + (c->current != c->idle ? 1 : 0);
    if (!best || mine < best_load + 2) {
        return;
    }
    c->runqueue.remove(t);
    publish_queued(c);
    rehome(t, c, best);  // NOTE: while t is off every queue: nobody else reads its home now
    push_remote(best, t);
}

// An idle CPU asks the busiest CPU that has threads waiting to give it one.
void request_work(cpu* c)
{
    uint64_t now = tsc::now();
    if (now - c->last_work_request < work_request_gap) {
        return;
    }
    cpu* busiest = nullptr;
    uint32_t most = 0;
    const unsigned n = online_cpus();
    for (unsigned i = 0; i < n; i++) {
        cpu* d = cpus[i];
        uint32_t q = d->nr_queued.load(std::memory_order_relaxed);
        if (d != c && q > most) {
            busiest = d;
            most = q;
        }
    }
    if (busiest && !busiest->need_balance.exchange(true, std::memory_order_relaxed)) {
        c->last_work_request = now;
        send_ipi(busiest, arch::vec_wakeup);
    }
}

}  // namespace sched::impl

namespace sched {

using namespace impl;

void start(thread* t)
{
    // The CPU homing the fewest threads (sleeping ones count: they come
    // back), then the least loaded right now; this CPU on a tie.
    irq_guard g;
    cpu* c = this_cpu();
    cpu* best = c;
    uint32_t best_homed = c->nr_homed.load(std::memory_order_relaxed), best_load = load(c);
    const unsigned n = online_cpus();
    for (unsigned i = 0; i < n; i++) {
        cpu* d = cpus[i];
        uint32_t h = d->nr_homed.load(std::memory_order_relaxed), l = load(d);
        if (h < best_homed || (h == best_homed && l < best_load)) {
            best = d;
            best_homed = h;
            best_load = l;
        }
    }
    start_on(t, best);
}

}  // namespace sched
