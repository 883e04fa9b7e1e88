// A condition variable on top of the lock-free mutex (lib/lfmutex.hh).
//
// Waiters push a record onto a lock-free queue *before* releasing the user's
// mutex, so a signal sent after that release finds them: no lost wake-ups.
// Signallers pop; an internal mutex of the same kind makes them one consumer
// at a time (the queue allows one), and it is held only for the pops, never
// while anyone sleeps on the condition.
//
// NOTE (invariants):
//  - A waiter returns from wait() only after a signaller set its flag (no
//    spurious returns from the condvar itself; callers still loop on their
//    predicate, as the predicate may have changed again by then).
//  - wake_one() wakes the longest-waiting thread (FIFO); wake_all() wakes
//    exactly the threads queued before it took the queue.
//  - Signals are not remembered: a signal with no waiter is lost, by design
//    (the predicate, under the user's mutex, carries the state).
//
// The platform P is the mutex's (lib/lfmutex.hh), plus
//   static void on_condvar_wait(const void* cv, const void* m);
//   static void on_condvar_wake(const void* cv, uint32_t count);
#pragma once

#include <atomic>
#include <stdint.h>

#include "lib/lfmutex.hh"
#include "lib/mpsc_queue.hh"

namespace lockfree {

template <class P>
class condvar {
public:
    using thread = typename P::thread;
    using mutex_type = mutex<P>;

    constexpr condvar() = default;
    condvar(const condvar&) = delete;
    condvar& operator=(const condvar&) = delete;

    // The caller owns m (once: not recursively). Releases it, sleeps until
    // signalled, and owns m again on return.
    void wait(mutex_type& m)
    {
        waiter w;
        w.t = P::current();
        P::on_condvar_wait(this, &m);
        queue_.push(&w);
        m.unlock();
        P::wait_flag(this, w.woken);
        m.lock();
    }

    // Returns the number of threads woken (0 or 1).
    uint32_t wake_one()
    {
        if (queue_.empty()) {
            P::on_condvar_wake(this, 0);
            return 0;  // nobody queued before this call: nothing to do
        }
        consumers_.lock();
        waiter* w = queue_.pop();
        consumers_.unlock();
        P::on_condvar_wake(this, w ? 1 : 0);
        if (w) {
            wake(w);
        }
        return w ? 1 : 0;
    }

    uint32_t wake_all()
    {
        if (queue_.empty()) {
            P::on_condvar_wake(this, 0);
            return 0;
        }
        // Detach every queued record first (they stay valid: their threads
        // sleep until woken), then wake them outside the internal mutex.
        waiter* head = nullptr;
        waiter** tail = &head;
        uint32_t n = 0;
        consumers_.lock();
        while (waiter* w = queue_.pop()) {
            *tail = w;
            tail = &w->next;
            n++;
        }
        *tail = nullptr;
        consumers_.unlock();
        P::on_condvar_wake(this, n);
        while (head) {
            waiter* next = head->next;  // read before the record may vanish
            wake(head);
            head = next;
        }
        return n;
    }

private:
    struct waiter {
        waiter* next = nullptr;
        thread* t = nullptr;
        std::atomic<uint32_t> woken{0};
    };
    struct waiter_link {
        static waiter*& next(waiter* w) { return w->next; }
    };

    static void wake(waiter* w)
    {
        thread* t = w->t;
        w->woken.store(1, std::memory_order_release);  // w may vanish from here on
        P::wake(t);
    }

    mpsc_queue<waiter, waiter_link> queue_;
    mutex_type consumers_;  // one popper at a time
};

}  // namespace lockfree
