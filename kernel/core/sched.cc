#include "core/sched.hh"

#include "core/panic.hh"
#include "core/percpu.hh"
#include "core/timer.hh"
#include "cpu.hh"
#include "generated/tracepoints.hh"

namespace {

// Runs on the incoming thread right after every switch, with interrupts off.
// Only now is prev's stack free: a dead thread can be reaped, or its joiner
// told (with SMP, the joiner may run on another CPU at this very moment, so
// on_cpu is what it waits for, not the state alone).
void finish_switch(thread* prev)
{
    prev->on_cpu = false;
    if (prev->state == thread_state::dead) {
        if (prev->detached) {
            threads::reap(prev);
        } else {
            prev->joiners.wake_all();
        }
    }
}

}  // namespace

// Where every new thread starts (via thread_trampoline in switch.S).
extern "C" [[noreturn]] void thread_start(thread* prev, thread* self)
{
    finish_switch(prev);
    arch::irq_enable();
    self->entry(self->arg);
    threads::exit();
}

namespace sched {

void init_cpu(cpu* c)
{
    c->need_resched = false;
    c->preempt_disabled = 0;
    c->slice_end = 0;
    c->programmed = 0;
}

void schedule(thread_state why)
{
    cpu* c = this_cpu();
    thread* prev = c->current;
    c->need_resched = false;
    prev->state = why;
    if (why == thread_state::runnable && prev != c->idle) {
        c->runqueue.push_back(prev);
    }
    thread* next = c->runqueue.pop_front();
    if (!next) {
        next = c->idle;
    }
    if (next == prev) {
        prev->state = thread_state::running;
        timers::start_slice(c, prev != c->idle);
        return;
    }
    if (prev->stack && *static_cast<uint64_t*>(prev->stack) != stack_canary) {
        panic("thread %u (%s) overflowed its %zu-byte stack", prev->id, prev->name, prev->stack_size);
    }
    // On the outgoing thread, before the switch: the record's tid is prev.
    trace_sched_switch(next->id, uint8_t(why));
    next->state = thread_state::running;
    next->on_cpu = true;
    c->current = next;
    c->current_tid = next->id;
    c->nr_switches++;
    timers::start_slice(c, next != c->idle);
    thread* from = arch_switch(prev, next);
    finish_switch(from);
}

void yield()
{
    irq_guard g;
    schedule(thread_state::runnable);
}

void wake(thread* t)
{
    irq_guard g;
    if (t->state != thread_state::waiting && t->state != thread_state::sleeping) {
        return;
    }
    cpu* c = t->home;
    t->state = thread_state::runnable;
    c->runqueue.push_back(t);
    trace_sched_wake(t->id, uint16_t(c->id));
    // FIXME(SMP): a remote home CPU needs an IPI if it is idle.
}

void start(thread* t)
{
    irq_guard g;
    t->state = thread_state::runnable;
    t->home->runqueue.push_back(t);
}

void request_resched(cpu* c) { c->need_resched = true; }

void on_interrupt_exit()
{
    cpu* c = this_cpu();
    // The idle thread is not preempted: its loop looks at the run queue as
    // soon as the interrupt returns from its hlt.
    if (c->need_resched && !c->preempt_disabled && c->current != c->idle) {
        schedule(thread_state::runnable);
    }
}

void preempt_disable()
{
    this_cpu()->preempt_disabled++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

void preempt_enable()
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    irq_guard g;
    cpu* c = this_cpu();
    if (--c->preempt_disabled == 0 && c->need_resched) {
        schedule(thread_state::runnable);
    }
}

void idle_loop()
{
    for (;;) {
        arch::irq_disable();
        cpu* c = this_cpu();
        if (!c->runqueue.empty()) {
            schedule(thread_state::runnable);
            arch::irq_enable();
            continue;
        }
        trace_sched_idle();
        arch::enable_and_halt();
        trace_sched_idle_ret();
    }
}

}  // namespace sched
