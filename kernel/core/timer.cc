#include "core/timer.hh"

#include "core/panic.hh"
#include "core/percpu.hh"
#include "core/sched.hh"
#include "generated/tracepoints.hh"
#include "lapic.hh"
#include "tsc.hh"

namespace timers {
namespace {

uint64_t slice_ticks;

// Sets the LAPIC timer for the nearest deadline: the first timer or the end
// of the slice. Interrupts off.
void program(cpu* c)
{
    uint64_t next = ~uint64_t(0);
    if (timer* t = c->timers.front()) {
        next = t->due;
    }
    if (c->slice_end && c->slice_end < next) {
        next = c->slice_end;
    }
    if (next == ~uint64_t(0)) {
        if (c->programmed) {
            lapic::timer_stop();
            c->programmed = 0;
        }
        return;
    }
    uint64_t now = tsc::now();
    lapic::timer_oneshot(next > now ? tsc::to_lapic(next - now) : 1);
    c->programmed = next;
}

}  // namespace

void init() { slice_ticks = tsc::from_ns(slice_ns); }

void arm(timer* t, uint64_t due)
{
    irq_guard g;
    cpu* c = this_cpu();
    if (t->armed()) {
        if (t->owner != c) {
            panic("timers: timer %p re-armed on CPU %u while armed on CPU %u", t, c->id, t->owner->id);
        }
        c->timers.remove(t);
    }
    t->owner = c;
    t->due = due;
    timer* pos = c->timers.front();
    while (pos && pos->due <= due) {
        pos = c->timers.next(pos);
    }
    c->timers.insert_before(pos, t);
    // Only an earlier deadline needs the LAPIC reprogrammed; a later one is
    // picked up when the current deadline fires.
    if (!c->programmed || due < c->programmed) {
        program(c);
    }
}

void cancel(timer* t)
{
    irq_guard g;
    if (t->armed()) {
        cpu* c = this_cpu();
        if (t->owner != c) {
            panic("timers: timer %p cancelled on CPU %u while armed on CPU %u", t, c->id, t->owner->id);
        }
        c->timers.remove(t);
    }
}

void on_interrupt()
{
    cpu* c = this_cpu();
    c->programmed = 0;
    uint64_t now = tsc::now();
    while (timer* t = c->timers.front()) {
        if (t->due > now) {
            break;
        }
        c->timers.remove(t);
        trace_timer_fire(t, t->due);
        t->fn(t);
    }
    if (c->slice_end && now >= c->slice_end) {
        if (!c->runqueue.empty()) {
            trace_sched_preempt();
            sched::request_resched(c);
            // Others wait here: a chance to give one to a less loaded CPU.
            c->need_balance.store(true, std::memory_order_relaxed);
            c->slice_end = 0;  // no more slice interrupts until the switch
        } else {
            c->slice_end = now + slice_ticks;  // nobody waits: keep running
        }
    }
    program(c);
}

void start_slice(cpu* c, bool slice)
{
    if (!slice) {
        c->slice_end = 0;  // the idle thread runs until an interrupt anyway
        return;
    }
    c->slice_end = tsc::now() + slice_ticks;
    // A deadline already set earlier stays: when it fires, on_interrupt sees
    // the slice still running and reprograms. That saves a LAPIC write per switch.
    if (!c->programmed || c->programmed > c->slice_end) {
        program(c);
    }
}

}  // namespace timers
