// The lock-free mutex with hand-off, after Gidenstam and Papatriantafilou,
// "LFthreads: a lock-free thread library" / "Blocking without locking" (2007),
// as OSv's core/lfmutex.cc implements it. No spinlock anywhere: the mutex is
// an atomic count plus a lock-free wait queue, and a waiter sleeps.
//
//   lock():   count 0 -> 1 (a CAS, then a fetch_add if the CAS failed) ->
//             owned at once. Otherwise join the wait queue and sleep until an
//             unlocker hands the mutex over.
//   unlock(): count 1 -> 0 (a CAS, then a fetch_sub) -> nobody else: done.
//             Otherwise pop the first waiter and hand the mutex straight to
//             it (it owns the mutex from that instant, before it even runs).
//             If the queue is still empty, the concurrent locker has not
//             queued yet: publish a hand-off token and leave; whoever takes
//             the token (that locker, or this unlocker if the queue filled
//             meanwhile) does the hand-off ("helping").
//
// NOTE (invariants, also in docs/design.md, Kernel section):
//  - count = holder (0 or 1) + lockers past their fetch_add that have not been
//    handed the mutex. count > 0 with no owner means a hand-off is in flight.
//  - Exactly one thread at a time holds the duty to pop the wait queue: an
//    unlocker whose fetch_sub saw count > 1, or the single winner of the CAS
//    on a hand-off token. So the queue has one consumer at a time.
//  - Tokens are unique (a sequence number), so a stale CAS on an old token
//    fails; a token also carries the unlocker's thread id, so a hand-off done
//    by a helper still names the thread that released the mutex.
//  - Every thread that joins the queue is handed the mutex exactly once, so
//    contended acquisitions == hand-offs, and no wake-up is lost: the waiter
//    sleeps on a flag the hander sets before waking it (the platform's sleep
//    re-tests the flag after announcing it will sleep).
//  - The hander touches the waiter's record (on the waiter's stack) only
//    before setting the flag; afterwards only the thread object, which the
//    platform keeps valid (kernel: thread objects are never freed).
//
// The fast paths try a CAS first: under QEMU's TCG an uncontended lock+unlock
// pair then took ~110 instead of ~150 guest TSC cycles (mutexbench, medians
// of 5 boots; TCG seems to emulate a locked cmpxchg more cheaply than a
// locked xadd). On the contended path the failed CAS is one more atomic.
//
// Freestanding, a template over the platform, so the same code runs in the
// kernel (core/mutex.hh) and on the host under ThreadSanitizer
// (tests/native/mutex_host.cc). The platform P provides:
//   using thread = ...;
//   static thread* current();
//   static uint32_t tid(thread*);
//   static void wait_flag(const void* obj, std::atomic<uint32_t>& flag);  // until flag != 0
//   static void wake(thread*);
//   static void on_lock(const void* m), on_lock_wait(m), on_lock_wake(m),
//               on_handoff(m, uint32_t from_tid, uint32_t to_tid), on_unlock(m),
//               on_try_lock(m, bool ok);                                   // tracepoints
//   static void misuse(const char* what, const void* m);                     // no return
#pragma once

#include <atomic>
#include <stdint.h>

#include "lib/mpsc_queue.hh"

namespace lockfree {

template <class P>
class mutex {
public:
    using thread = typename P::thread;

    constexpr mutex() = default;
    mutex(const mutex&) = delete;
    mutex& operator=(const mutex&) = delete;

    // Blocks until the calling thread owns the mutex; recursive for the owner.
    // Returns true if the mutex was handed over after waiting (contended).
    bool lock()
    {
        thread* self = P::current();
        int zero = 0;
        if (count_.compare_exchange_strong(zero, 1, std::memory_order_acquire)) {
            // NOTE: traced after the count, so in a trace a hold never starts
            // before the previous holder's mutex_unlock.
            take(self);
            P::on_lock(this);
            return false;
        }
        if (owner_.load(std::memory_order_relaxed) == self) {
            // Only the owner can see itself here: owner_ is set by the owner
            // and cleared by it before its unlock gives the mutex away.
            depth_++;
            P::on_lock(this);
            return false;
        }
        if (count_.fetch_add(1, std::memory_order_acquire) == 0) {
            take(self);  // freed meanwhile
            P::on_lock(this);
            return false;
        }
        P::on_lock(this);
        // Traced before joining the queue: once queued we may be handed the
        // mutex at any moment, and the hand-off must follow this record.
        P::on_lock_wait(this);
        waiter w;
        w.t = self;
        queue_.push(&w);
        // Helping: an unlocker that found the queue empty left a token; take
        // it and do its hand-off (perhaps to ourselves).
        uint64_t token = handoff_.load();
        if (token && !queue_.empty() && handoff_.compare_exchange_strong(token, 0)) {
            waiter* first = queue_.pop();  // not empty: we are the only consumer
            if (first != &w) {
                hand(first, uint32_t(token));
            } else {
                P::on_handoff(this, uint32_t(token), P::tid(self));
                P::on_lock_wake(this);
                take(self);
                return true;
            }
        }
        P::wait_flag(this, w.handed);
        P::on_lock_wake(this);
        take(self);
        return true;
    }

    // Never blocks. True if the calling thread owns the mutex afterwards.
    bool try_lock()
    {
        thread* self = P::current();
        int zero = 0;
        if (count_.compare_exchange_strong(zero, 1, std::memory_order_acquire)) {
            take(self);
            P::on_try_lock(this, true);
            return true;
        }
        if (owner_.load(std::memory_order_relaxed) == self) {
            depth_++;
            P::on_try_lock(this, true);
            return true;
        }
        // Free but with a hand-off in flight (an unlocker left a token for a
        // locker that has not queued yet): take the token and the mutex. The
        // locker then queues and is handed the mutex by our unlock.
        uint64_t token = handoff_.load();
        if (token && handoff_.compare_exchange_strong(token, 0)) {
            count_.fetch_add(1, std::memory_order_relaxed);
            take(self);
            P::on_try_lock(this, true);
            return true;
        }
        P::on_try_lock(this, false);
        return false;
    }

    void unlock()
    {
        thread* self = P::current();
        if (owner_.load(std::memory_order_relaxed) != self || depth_ == 0) {
            P::misuse("unlock of a mutex the thread does not own", this);
        }
        P::on_unlock(this);
        if (--depth_) {
            return;  // recursive: still held
        }
        // Cleared before the mutex can change hands, or a later lock() by this
        // thread would take itself for the owner while someone else owns it.
        owner_.store(nullptr, std::memory_order_relaxed);
        int one = 1;
        if (count_.compare_exchange_strong(one, 0, std::memory_order_release, std::memory_order_relaxed) ||
            count_.fetch_sub(1, std::memory_order_release) == 1) {
            return;  // nobody else
        }
        // A locker exists: we hold the duty to hand the mutex over.
        const uint32_t me = P::tid(self);
        for (;;) {
            if (waiter* first = queue_.pop()) {
                hand(first, me);
                return;
            }
            // The locker has not queued yet: leave a token for it. If the
            // queue is still empty, that locker will find the token.
            uint32_t seq = seq_.fetch_add(1, std::memory_order_relaxed) + 1;
            if (seq == 0) {
                seq = seq_.fetch_add(1, std::memory_order_relaxed) + 1;
            }
            uint64_t token = (uint64_t(seq) << 32) | me;
            handoff_.store(token);
            if (queue_.empty()) {
                return;
            }
            // Someone queued meanwhile: take the duty back, unless a helper
            // already took the token (then it is responsible now).
            if (!handoff_.compare_exchange_strong(token, 0)) {
                return;
            }
        }
    }

    thread* owner() const { return owner_.load(std::memory_order_relaxed); }
    bool owned_by_me() const { return owner() == P::current() && depth_ > 0; }

    // An unprotected snapshot for debuggers and reports: lockers past the count.
    int count() const { return count_.load(std::memory_order_relaxed); }

private:
    struct waiter {
        waiter* next = nullptr;
        thread* t = nullptr;
        std::atomic<uint32_t> handed{0};
    };
    struct waiter_link {
        static waiter*& next(waiter* w) { return w->next; }
    };

    void take(thread* self)
    {
        owner_.store(self, std::memory_order_relaxed);
        depth_ = 1;
    }

    // Gives the mutex to w's thread on behalf of the unlocker `from`.
    void hand(waiter* w, uint32_t from)
    {
        thread* t = w->t;
        P::on_handoff(this, from, P::tid(t));
        // NOTE: release: the new owner sees the critical section before it.
        // After this store w may vanish (it lives on the waiter's stack).
        w->handed.store(1, std::memory_order_release);
        P::wake(t);
    }

    std::atomic<int> count_{0};
    unsigned depth_ = 0;  // the owner's recursion depth (only the owner touches it)
    std::atomic<thread*> owner_{nullptr};
    mpsc_queue<waiter, waiter_link> queue_;
    std::atomic<uint32_t> seq_{0};
    std::atomic<uint64_t> handoff_{0};  // 0, or (sequence << 32) | unlocker tid
};

}  // namespace lockfree
