// A lock-free intrusive queue for many producers and one consumer at a time.
//
// Producers push onto a stack with one CAS (ABA cannot hurt a push). The
// consumer takes the whole stack with one exchange when its private pop list
// runs dry, and reverses it, so items come out in push order (FIFO).
//
// NOTE: "one consumer at a time" is the caller's invariant, not the queue's:
// the mutex guarantees it with its responsibility protocol (only the thread
// holding the wake-up duty pops), a CPU's wake-up queue by being drained only
// by its owning CPU with interrupts off. Successive consumers must be ordered
// by some happens-before edge (an atomic handed from one to the next).
//
// Freestanding: std::atomic only, so it builds in the kernel and on the host
// (tests/native/), where ThreadSanitizer checks it.
#pragma once

#include <atomic>

namespace lockfree {

// Link: a class with `static T*& next(T*)` naming the element's link field.
template <class T, class Link>
class mpsc_queue {
public:
    constexpr mpsc_queue() = default;
    mpsc_queue(const mpsc_queue&) = delete;
    mpsc_queue& operator=(const mpsc_queue&) = delete;

    // Any thread, any time. Returns true if the queue looked empty before
    // (the pushed item is the only one): callers use that to send one
    // notification per batch instead of one per item.
    bool push(T* item)
    {
        T* old = pushed_.load(std::memory_order_relaxed);
        do {
            Link::next(item) = old;
        } while (!pushed_.compare_exchange_weak(old, item, std::memory_order_acq_rel,
                                                std::memory_order_relaxed));
        // NOTE: acq_rel above pairs with the consumer's acq_rel exchange: a
        // push that found the stack empty after the consumer emptied it also
        // sees the consumer's pop list as it left it, so "was empty" is never
        // a stale "no" (the CPU wake-up queue relies on it to send its IPI).
        return old == nullptr && popq_.load(std::memory_order_relaxed) == nullptr;
    }

    // The consumer only. nullptr when empty.
    T* pop()
    {
        T* item = popq_.load(std::memory_order_relaxed);
        if (item) {
            popq_.store(Link::next(item), std::memory_order_relaxed);
            return item;
        }
        item = pushed_.exchange(nullptr, std::memory_order_acq_rel);
        if (!item) {
            return nullptr;
        }
        // item is the newest; reverse the chain so the oldest comes out first.
        T* rest = nullptr;
        while (T* older = Link::next(item)) {
            Link::next(item) = rest;
            rest = item;
            item = older;
        }
        popq_.store(rest, std::memory_order_relaxed);
        return item;
    }

    // Any thread; exact only for the consumer (a push may land right after).
    bool empty() const
    {
        return !popq_.load(std::memory_order_relaxed) && !pushed_.load(std::memory_order_acquire);
    }

private:
    std::atomic<T*> pushed_{nullptr};  // newest first
    // Oldest first; touched by the consumer, read by empty(). Atomic (relaxed)
    // because the mutex's lockers may test empty() while a consumer pops.
    std::atomic<T*> popq_{nullptr};
};

}  // namespace lockfree
