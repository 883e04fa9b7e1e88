// Wait queues: a thread blocks until another thread (or an interrupt
// handler) wakes it. No spinlock: on one CPU, callers test their condition
// and block with interrupts off, so no wake-up can slip in between.
// FIXME(SMP): the queue itself needs the lock-free mutex when CPUs share it.
#pragma once

#include "cpu.hh"
#include "lib/list.hh"

struct thread;

// Threads sit on one run queue or one wait queue at a time, through the same node.
struct thread_rq_link {
    static list_node* node(thread* t);
    static thread* owner(list_node* n);
};
using thread_list = intrusive_list<thread, thread_rq_link>;

class waitqueue {
public:
    // Blocks the current thread until woken. Interrupts must be off; they are
    // off again on return. Wake-ups may be spurious: re-test the condition.
    void wait();

    // Each returns the number of threads made runnable. Callable from
    // interrupt handlers.
    unsigned wake_one();
    unsigned wake_all();

    bool empty() const { return waiters_.empty(); }

    // The usual pattern: block until pred() holds (pred runs with interrupts off).
    template <class Pred>
    void wait_until(Pred pred)
    {
        irq_guard g;
        while (!pred()) {
            wait();
        }
    }

private:
    thread_list waiters_;
};
