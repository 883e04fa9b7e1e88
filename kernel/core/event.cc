#include "core/event.hh"

#include "core/percpu.hh"
#include "core/sched.hh"
#include "generated/tracepoints.hh"

// NOTE: the waiter publishes itself, then tests the flag, then blocks; the
// signaller sets the flag, then wakes whoever is published. Interrupts are
// off in between on the waiter's side, so (one CPU) a signal cannot fall
// between the test and the block.
void event::wait()
{
    irq_guard g;
    __atomic_store_n(&waiter_, current_thread(), __ATOMIC_SEQ_CST);
    while (!__atomic_exchange_n(&pending_, false, __ATOMIC_SEQ_CST)) {
        trace_sched_wait(this);
        sched::schedule(thread_state::waiting);
    }
    __atomic_store_n(&waiter_, nullptr, __ATOMIC_RELAXED);
}

void event::signal()
{
    __atomic_store_n(&pending_, true, __ATOMIC_SEQ_CST);
    if (thread* t = __atomic_load_n(&waiter_, __ATOMIC_SEQ_CST)) {
        sched::wake(t);
    }
}
