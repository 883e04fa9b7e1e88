// What kernel/include/trace/ring.hh needs from the platform, on x86-64.
// Everything here sits on the enabled-tracepoint fast path, so each is one or
// two instructions: flags save + cli, a %gs-relative load, rdtsc.
#pragma once

#include <stdint.h>

namespace trace {
struct ring;
}

namespace trace_platform {

// Offsets inside struct cpu (core/percpu.hh asserts them).
constexpr unsigned percpu_ring_offset = 16;
constexpr unsigned percpu_tid_offset = 24;

inline uint64_t irq_save()
{
    uint64_t f;
    asm volatile("pushfq; popq %0; cli" : "=r"(f) : : "memory");
    return f;
}

// sti only if interrupts were on: cheaper than popfq, and IF is all we changed.
inline void irq_restore(uint64_t f)
{
    if (f & (1u << 9)) {
        asm volatile("sti" : : : "memory");
    }
}

inline trace::ring* this_cpu_ring()
{
    trace::ring* r;
    asm volatile("movq %%gs:%c1, %0" : "=r"(r) : "i"(percpu_ring_offset));
    return r;
}

inline uint32_t current_tid()
{
    uint32_t t;
    asm volatile("movl %%gs:%c1, %0" : "=r"(t) : "i"(percpu_tid_offset));
    return t;
}

// The running thread's stack [lo, hi), where a stack walk may read (trace/stack.hh);
// 0, 0 when there is none. Out of line (core/trace.cc): only stack-taking records ask.
void stack_bounds(uint64_t* lo, uint64_t* hi);

inline uint64_t timestamp()
{
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t(hi) << 32) | lo;
}

}  // namespace trace_platform
