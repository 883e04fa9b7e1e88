// Wait queues: a thread blocks until a condition holds; another thread makes
// it hold and wakes one or all waiters.
//
// NOTE (SMP, no spinlock): the list of waiters is protected by a kernel
// mutex (a sleepable lock-free mutex, core/mutex.hh), so wake_one/wake_all
// are for thread context only; interrupt handlers wake threads directly
// (sched::wake). A waiter puts its record on the list *before* re-testing the
// condition, and a waker makes the condition true *before* taking records off
// the list, so a wake-up cannot fall between the test and the sleep.
#pragma once

#include <atomic>
#include <stdint.h>

#include "core/mutex.hh"
#include "core/sched.hh"
#include "lib/list.hh"

class waitqueue {
public:
    // Blocks until pred() holds. pred runs with interrupts off at times: it
    // must only read memory. Thread context.
    template <class Pred>
    void wait_until(Pred pred)
    {
        while (!pred()) {
            record r;
            r.t = current_thread();
            enqueue(&r);
            sched::wait_for([&] { return r.woken.load(std::memory_order_acquire) || pred(); }, this);
            settle(&r);
        }
    }

    // Each returns the number of threads woken. Thread context.
    unsigned wake_one();
    unsigned wake_all();

    bool empty();

private:
    struct record {
        list_node node;
        record* next = nullptr;  // wake_all's private chain, once off the list
        thread* t = nullptr;
        std::atomic<uint32_t> woken{0};
    };
    using record_list = intrusive_list<record, member_link<record, &record::node>>;

    void enqueue(record* r);
    // After the wait: off the list, and no waker still holds the record.
    void settle(record* r);
    static void wake(record* r);

    mutex m_;
    record_list waiters_;
};
