#include "core/waitqueue.hh"

#include "generated/tracepoints.hh"

void waitqueue::enqueue(record* r)
{
    lock_guard g(m_);
    waiters_.push_back(r);
}

void waitqueue::settle(record* r)
{
    if (r->woken.load(std::memory_order_acquire)) {
        return;  // a waker took it off the list and is done with it
    }
    bool taken;
    {
        lock_guard g(m_);
        taken = !r->node.linked();
        if (!taken) {
            waiters_.remove(r);
        }
    }
    if (taken) {
        // The condition came true on its own while a waker was taking this
        // record: the waker sets the flag next, and the record (on our
        // stack) must outlive that.
        sched::wait_for([r] { return r->woken.load(std::memory_order_acquire) != 0; }, this);
    }
}

void waitqueue::wake(record* r)
{
    thread* t = r->t;
    r->woken.store(1, std::memory_order_release);  // r may vanish from here on
    sched::wake(t);
}

unsigned waitqueue::wake_one()
{
    record* r;
    {
        lock_guard g(m_);
        r = waiters_.pop_front();
    }
    if (!r) {
        return 0;
    }
    wake(r);
    return 1;
}

unsigned waitqueue::wake_all()
{
    // Detach all records under the mutex, wake them outside it (a woken
    // thread's settle() needs no mutex once its flag is set).
    record* head = nullptr;
    record** tail = &head;
    unsigned n = 0;
    {
        lock_guard g(m_);
        while (record* r = waiters_.pop_front()) {
            *tail = r;
            tail = &r->next;
            n++;
        }
        *tail = nullptr;
    }
    while (head) {
        record* next = head->next;  // read before the record may vanish
        wake(head);
        head = next;
    }
    return n;
}

bool waitqueue::empty()
{
    lock_guard g(m_);
    return waiters_.empty();
}
