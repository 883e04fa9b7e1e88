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

// sched::wake() fences the hander's flag store from its read of our state
// (the lost wake-up that once hung the mutex app: see there).
void platform::wake(thread* t) { sched::wake(t); }

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
