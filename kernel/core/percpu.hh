// Per-CPU data, reached through %gs (IA32_GS_BASE points at the CPU's struct
// cpu, whose first word points at itself). Everything a CPU touches on its
// fast paths lives here: the running thread, the trace ring, the run queue,
// the timers.
//
// NOTE: who may touch what. The run queue, the timer list and the plain
// fields below belong to the owning CPU and are used with interrupts off.
// Other CPUs only push onto `incoming` (remote wake-ups, migrations, new
// threads) and read or set the atomics (the load figures balancing reads, the
// balance request). No spinlock guards any of it.
#pragma once

#include <atomic>
#include <stdint.h>

#include "core/thread.hh"
#include "core/timer.hh"
#include "gdt.hh"
#include "lib/mpsc_queue.hh"
#include "trace_platform.hh"

namespace arch {
struct interrupt_frame;
}

namespace trace {
struct ring;
}

constexpr unsigned max_cpus = 64;

struct thread_wake_link {
    static thread*& next(thread* t) { return t->wake_next; }
};

struct cpu {
    cpu* self = nullptr;                // %gs:0
    thread* current = nullptr;          // %gs:8
    trace::ring* ring = nullptr;        // %gs:16 (nullptr until the trace runtime is up)
    uint32_t current_tid = 0;           // %gs:24 (current->id, one load for trace records)
    uint32_t id = 0;                    // %gs:28
    uint32_t preempt_disabled = 0;      // nesting count; preemption waits while nonzero
    bool need_resched = false;          // set by interrupt handlers, acted on at interrupt exit
    thread* idle = nullptr;
    thread_list runqueue;  // runnable threads, FIFO (round robin)
    timer_list timers;     // armed timers, earliest first
    uint64_t slice_end = 0;    // TSC at which the running thread's slice ends; 0: none
    uint64_t programmed = 0;   // deadline the LAPIC timer is set for; 0: none
    uint64_t nr_switches = 0;  // context switches on this CPU since boot
    uint64_t tlb_gen = 0;      // paging::tlb_gen last flushed for (see paging.hh)
    uint64_t last_work_request = 0;  // TSC of this idle CPU's last balance request

    // Shared with other CPUs.
    alignas(64) lockfree::mpsc_queue<thread, thread_wake_link> incoming;  // consumer: this CPU
    std::atomic<uint32_t> nr_incoming{0};  // pushed, not yet taken into the run queue
    std::atomic<uint32_t> nr_queued{0};    // runqueue.size(), published for balancers
    std::atomic<uint32_t> nr_homed{0};     // live threads with this home (running, queued or asleep)
    std::atomic<bool> idle_now{true};      // its idle thread runs
    std::atomic<bool> polling{false};      // its idle thread polls `incoming`: wakers need no IPI
    std::atomic<bool> need_balance{false}; // an idle CPU asks it to give a thread away
    uint32_t apic_id = 0;                  // written once, before the CPU starts
    // The LAPIC timer interrupt's frame while its handlers run (the sampler reads the
    // interrupted rip and rbp from it), else nullptr. Interrupts are off meanwhile.
    const arch::interrupt_frame* timer_frame = nullptr;

    alignas(64) arch::arch_cpu arch{};
};

static_assert(__builtin_offsetof(cpu, self) == 0, "this_cpu() reads %gs:0");
static_assert(__builtin_offsetof(cpu, current) == 8, "current() reads %gs:8");
static_assert(__builtin_offsetof(cpu, ring) == trace_platform::percpu_ring_offset, "trace ring");
static_assert(__builtin_offsetof(cpu, current_tid) == trace_platform::percpu_tid_offset, "tid");

extern cpu boot_cpu;
// NOTE: cpus[i] is written before ncpus grows past i (release), and never
// changes after; readers load ncpus (acquire) and then index cpus[].
extern cpu* cpus[max_cpus];
extern std::atomic<unsigned> ncpus;

// Points %gs at c (on the CPU that will own it).
void percpu_install(cpu* c);

// volatile: a thread may be preempted and resume on another CPU, so the
// compiler must not reuse a value read before a possible switch.
inline cpu* this_cpu()
{
    cpu* c;
    asm volatile("movq %%gs:0, %0" : "=r"(c));
    return c;
}

inline thread* current_thread()
{
    thread* t;
    asm volatile("movq %%gs:8, %0" : "=r"(t));
    return t;
}

inline unsigned online_cpus() { return ncpus.load(std::memory_order_acquire); }
