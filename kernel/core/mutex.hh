// The kernel's mutex and condition variable: the lock-free algorithms of
// lib/lfmutex.hh and lib/lfcondvar.hh (read those for the invariants), bound
// to the scheduler and the tracepoints here.
//
// For sleepable paths only (thread context): lock() may block. Interrupt
// handlers never take a mutex; they wake a thread instead. The idle threads
// never block (the scheduler panics if one tries).
//
//   mutex m;  { lock_guard g(m); ... }        bool handed = m.lock();  m.unlock();
//   condvar cv;  m.lock(); while (!ready) cv.wait(m); m.unlock();     cv.wake_one();
#pragma once

#include <atomic>
#include <stdint.h>

#include "core/percpu.hh"
#include "core/thread.hh"
#include "generated/tracepoints.hh"
#include "lib/lfcondvar.hh"
#include "lib/lfmutex.hh"

namespace kmutex {

// The platform the lock-free algorithms run on: kernel threads, the
// scheduler's wait/wake, and the sync tracepoints (emitted exactly where
// tracepoints/sync.toml says).
// The fast-path hooks are inline (an uncontended lock+unlock is one atomic
// each way plus two predicted tracepoint flag tests); the rest is in mutex.cc.
struct platform {
    using thread = ::thread;
    static thread* current() { return current_thread(); }
    static uint32_t tid(thread* t) { return t ? t->id : 0; }
    static void wait_flag(const void* obj, std::atomic<uint32_t>& flag);
    static void wake(thread* t);
    static void on_lock(const void* m) { trace_mutex_lock(m); }
    static void on_lock_wait(const void* m);
    static void on_lock_wake(const void* m);
    static void on_handoff(const void* m, uint32_t from_tid, uint32_t to_tid);
    static void on_unlock(const void* m) { trace_mutex_unlock(m); }
    static void on_try_lock(const void* m, bool ok) { trace_mutex_try_lock(m, ok); }
    static void on_condvar_wait(const void* cv, const void* m);
    static void on_condvar_wake(const void* cv, uint32_t count);
    [[noreturn]] static void misuse(const char* what, const void* m);
};

}  // namespace kmutex

using mutex = lockfree::mutex<kmutex::platform>;
using condvar = lockfree::condvar<kmutex::platform>;

class lock_guard {
public:
    explicit lock_guard(mutex& m) : m_(m) { m_.lock(); }
    ~lock_guard() { m_.unlock(); }
    lock_guard(const lock_guard&) = delete;
    lock_guard& operator=(const lock_guard&) = delete;

private:
    mutex& m_;
};
