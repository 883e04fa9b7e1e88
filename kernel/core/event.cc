#include "core/event.hh"

#include "core/percpu.hh"
#include "core/sched.hh"

// NOTE: the waiter publishes itself, then tests (and consumes) the flag
// inside sched::wait_for's announce-then-check; the signaller sets the flag,
// then wakes whoever is published. Whatever order they race in, a signal
// either is seen by the test or finds the waiter announced and wakes it.
void event::wait()
{
    __atomic_store_n(&waiter_, current_thread(), __ATOMIC_SEQ_CST);
    sched::wait_for([this] { return __atomic_exchange_n(&pending_, false, __ATOMIC_SEQ_CST); }, this);
    __atomic_store_n(&waiter_, nullptr, __ATOMIC_RELAXED);
}

void event::signal()
{
    __atomic_store_n(&pending_, true, __ATOMIC_SEQ_CST);
    if (thread* t = __atomic_load_n(&waiter_, __ATOMIC_SEQ_CST)) {
        sched::wake(t);
    }
}
