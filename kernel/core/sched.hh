// The scheduler: per-CPU FIFO run queues, round robin with a time slice
// enforced by the LAPIC timer, wake-ups across CPUs by IPI, and a simple load
// balancer. Switches save only callee-saved registers and the stack pointer
// (switch.S); everything else is saved by the caller's ABI or, for
// preemption, by the interrupt entry.
//
// NOTE (invariants; docs/design.md, Kernel section, has the full list):
//  - A CPU's run queue is touched only by that CPU, with interrupts off.
//    Other CPUs hand it threads through its lock-free `incoming` queue and an
//    IPI (sent when that queue goes from empty to non-empty).
//  - A thread runs only on its home CPU; home changes only while the thread
//    sits on the home's run queue (migration, done by the home itself), so a
//    thread on a run queue is always fully switched out.
//  - Blocking is announce-then-check: prepare_wait() publishes the waiting
//    state, the caller re-tests its condition, then schedule() blocks. A
//    waker first makes the condition true, then wake() CASes waiting ->
//    waking: whichever order they race in, the thread does not sleep through
//    the wake-up. Only the home CPU takes a thread out of `waking`.
#pragma once

#include "core/thread.hh"
#include "cpu.hh"

struct cpu;

namespace sched {

void init_cpu(cpu* c);

// Give up the CPU. Interrupts must be off. why: runnable (yield/preempt:
// back on the run queue), waiting or sleeping (announced by prepare_wait;
// returns at once if a wake-up already came), dead (never again). Returns when
// the thread runs again.
void schedule(thread_state why);

// Announces that the current thread is about to block (interrupts off).
// Then re-test the condition: if it holds, cancel_wait(); else schedule(why).
void prepare_wait(thread_state why = thread_state::waiting);
void cancel_wait();

// Blocks the current thread until pred() holds; a waker makes pred() true and
// then calls wake(thread). obj names what is waited on (sched_wait record).
template <class Pred>
void wait_for(Pred pred, const void* obj);

void yield();

// Makes a waiting or sleeping thread runnable on its home CPU: returns false
// if it was neither (already awake). Safe from interrupt handlers and from any
// CPU, also on a thread that may have exited meanwhile (thread.hh).
bool wake(thread* t);

// Puts a new thread on the least loaded CPU's run queue, or on c's.
void start(thread* t);
void start_on(thread* t, cpu* c);

// The wake-up IPI handler: takes this CPU's incoming threads.
void on_wakeup_ipi();

// Interrupt exit: balance or preempt if a handler asked for it.
void on_interrupt_exit();

// Asks for a reschedule at the next preemption point.
void request_resched(cpu* c);

void preempt_disable();
void preempt_enable();

// Context switches on all CPUs since boot.
uint64_t total_switches();

// Each CPU's boot context, after boot, runs this forever as its idle thread.
[[noreturn]] void idle_loop();
// How long an idle CPU polls its wake-up queue before it halts (boot option
// idle_poll=US, 0: halt at once). Under TCG a halted vCPU takes tens of
// microseconds to wake.
constexpr uint64_t default_idle_poll_us = 50;
void set_idle_poll_us(uint64_t us);
// How long (TSC ticks) an idle CPU polls before it halts; 0 when it halts at once (idle_poll=0,
// or a single CPU).
uint64_t idle_poll_window();

// Records the sched_wait and blocks (interrupts off, after prepare_wait).
void block(const void* obj);

template <class Pred>
void wait_for(Pred pred, const void* obj)
{
    if (pred()) {
        return;
    }
    irq_guard g;
    while (!pred()) {
        prepare_wait();
        if (pred()) {
            cancel_wait();
            break;
        }
        block(obj);
    }
}

}  // namespace sched

// switch.S: saves callee-saved registers and rsp into prev, loads next's,
// and returns (in next's context) the thread that switched to it.
extern "C" thread* arch_switch(thread* prev, thread* next);
extern "C" void thread_trampoline();
