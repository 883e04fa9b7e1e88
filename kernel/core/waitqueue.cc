#include "core/waitqueue.hh"

#include "core/panic.hh"
#include "core/percpu.hh"
#include "core/sched.hh"
#include "core/thread.hh"
#include "generated/tracepoints.hh"

void waitqueue::wait()
{
    if (arch::irqs_enabled()) {
        // The caller tested its condition with interrupts on: a wake-up
        // could have slipped in between, and this wait would never end.
        panic("waitqueue::wait with interrupts enabled");
    }
    thread* t = current_thread();
    trace_sched_wait(this);
    waiters_.push_back(t);
    sched::schedule(thread_state::waiting);
    // A wake removed us from the list; anything else (none today) must too.
    if (t->rq_node.linked()) {
        waiters_.remove(t);
    }
}

unsigned waitqueue::wake_one()
{
    irq_guard g;
    thread* t = waiters_.pop_front();
    if (!t) {
        return 0;
    }
    sched::wake(t);
    return 1;
}

unsigned waitqueue::wake_all()
{
    irq_guard g;
    unsigned n = 0;
    while (thread* t = waiters_.pop_front()) {
        sched::wake(t);
        n++;
    }
    return n;
}
