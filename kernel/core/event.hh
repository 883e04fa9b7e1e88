// A one-waiter event: a thread blocks in wait() until someone signals. The
// signal may come from any context and CPU, interrupt handlers included (the device
// drivers' handlers do nothing else). A signal with nobody waiting is kept
// and ends the next wait at once; several signals before a wait count as one.
#pragma once

#include <stdint.h>

struct thread;

class event {
public:
    void signal();
    // Thread context, one waiter at a time.
    void wait();
    // Whether a signal is pending (without consuming it).
    bool pending() const { return __atomic_load_n(&pending_, __ATOMIC_ACQUIRE); }

private:
    bool pending_ = false;
    thread* waiter_ = nullptr;
};
