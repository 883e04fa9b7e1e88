// Per-CPU one-shot timers on the TSC clock, and the scheduler's time slice.
// The LAPIC timer is programmed for the nearest of the two, so a CPU with
// nothing to do takes no interrupts at all.
//
// NOTE: a timer is armed, fired and cancelled on one CPU (the one that armed
// it), with interrupts off: per-CPU data, no lock. Cancelling or re-arming it
// from another CPU while it is armed is a bug and panics. Sleep timers follow
// this naturally: a sleeping thread cannot migrate, and it wakes on the CPU
// whose timer fired.
#pragma once

#include <stdint.h>

#include "lib/list.hh"

struct cpu;

struct timer {
    list_node node;  // on a CPU's timer list while armed
    uint64_t due = 0;  // TSC ticks
    void (*fn)(timer*) = nullptr;  // runs in interrupt context: wake a thread, no more
    void* arg = nullptr;
    cpu* owner = nullptr;  // the CPU whose list holds it while armed
    bool armed() const { return node.linked(); }
};

using timer_list = intrusive_list<timer, member_link<timer, &timer::node>>;

namespace timers {

constexpr uint64_t slice_ns = 4000000;  // 4 ms time slice

void init();  // after TSC calibration
void arm(timer* t, uint64_t due);  // on this CPU; re-arming moves it
void cancel(timer* t);             // on the CPU it is armed on (no-op if not armed)

// The LAPIC timer interrupt: fire expired timers, end an expired time slice.
void on_interrupt();

// Called by the scheduler at each switch (interrupts off): a running thread
// gets a fresh slice, the idle thread none.
void start_slice(cpu* c, bool slice);

}  // namespace timers
