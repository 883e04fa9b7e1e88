// The scheduler: per-CPU FIFO run queues, round robin with a time slice
// enforced by the LAPIC timer. Switches save only callee-saved registers and
// the stack pointer (switch.S); everything else is saved by the caller's ABI
// or, for preemption, by the interrupt entry.
#pragma once

#include "core/thread.hh"

struct cpu;

namespace sched {

void init_cpu(cpu* c);

// Give up the CPU. Interrupts must be off. why: runnable (yield/preempt:
// back on the run queue), waiting or sleeping (someone holds a way to wake
// it), dead (never again). Returns when the thread runs again.
void schedule(thread_state why);

void yield();

// Makes a waiting or sleeping thread runnable on its home CPU; no effect on
// other states. Interrupt-safe. The thread must be on no wait queue.
void wake(thread* t);

// Puts a new thread on its home CPU's run queue.
void start(thread* t);

// Interrupt exit: preempt the interrupted thread if a handler asked for it.
void on_interrupt_exit();

// Asks for a reschedule at the next preemption point.
void request_resched(cpu* c);

void preempt_disable();
void preempt_enable();

// The boot CPU's context, after boot, runs this forever as the idle thread.
[[noreturn]] void idle_loop();

}  // namespace sched

// switch.S: saves callee-saved registers and rsp into prev, loads next's,
// and returns (in next's context) the thread that switched to it.
extern "C" thread* arch_switch(thread* prev, thread* next);
extern "C" void thread_trampoline();
