#include "core/mutex.hh"

#include "core/panic.hh"
#include "core/percpu.hh"
#include "core/sched.hh"
#include "core/thread.hh"
#include "generated/tracepoints.hh"

namespace kmutex {

// Announce, re-test, block: the hander sets the flag before waking us, so
// either we see the flag or its wake() finds us waiting (sched.hh).
void platform::wait_flag(const void* obj, std::atomic<uint32_t>& flag)
{
    sched::wait_for([&flag] { return flag.load(std::memory_order_acquire) != 0; }, obj);
}

// NOTE: the hander stored the flag (release) just before this, and
// sched::wake() reads the thread's state before its CAS: a plain load, which
// x86 lets pass the earlier store. The waiter does the mirror image
// (prepare_wait() stores `waiting`, then re-tests the flag). Without a full
// fence between our store and that load, both sides can read the old value:
// the waiter sleeps on a flag it did not see set, wake() sees it still running
// and does nothing, and the mutex's new owner never runs (seen under
// multi-threaded TCG: the mutex app hung in about 1 of 5 runs on 2 vCPUs).
void platform::wake(thread* t)
{
    std::atomic_thread_fence(std::memory_order_seq_cst);
    sched::wake(t);
}

void platform::on_lock_wait(const void* m) { trace_mutex_lock_wait(m); }
void platform::on_lock_wake(const void* m) { trace_mutex_lock_wake(m); }
void platform::on_handoff(const void* m, uint32_t from, uint32_t to) { trace_mutex_handoff(m, from, to); }
void platform::on_condvar_wait(const void* cv, const void* m) { trace_condvar_wait(cv, m); }
void platform::on_condvar_wake(const void* cv, uint32_t n) { trace_condvar_wake(cv, n); }

void platform::misuse(const char* what, const void* m)
{
    thread* t = current_thread();
    panic("mutex %p: %s (thread %u)", m, what, t ? t->id : 0);
}

}  // namespace kmutex
