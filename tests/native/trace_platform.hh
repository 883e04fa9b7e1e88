// Host (user-space) platform for the trace ring writer: lets kernel/include/trace/ring.hh
// run natively for unit tests, sanitizers and instruction counts.
#pragma once

#include <stdint.h>

namespace trace {
struct ring;
}

namespace trace_platform {

// One "CPU" per host thread: each test thread points this at its own ring.
extern thread_local trace::ring* current_ring;
extern thread_local uint32_t current_thread;
extern uint64_t fake_clock;  // with TRACE_FAKE_CLOCK, timestamps come from here (deterministic tests)

// Where a stack walk may read (trace/stack.hh): a harness sets them around its own stack.
inline thread_local uint64_t stack_lo = 0, stack_hi = 0;
inline void stack_bounds(uint64_t* lo, uint64_t* hi) { *lo = stack_lo; *hi = stack_hi; }

inline uint64_t irq_save() { return 0; }
inline void irq_restore(uint64_t) {}
inline trace::ring* this_cpu_ring() { return current_ring; }
inline uint32_t current_tid() { return current_thread; }
inline uint64_t timestamp() {
#ifdef TRACE_FAKE_CLOCK
    return fake_clock++;
#else
    return __builtin_ia32_rdtsc();
#endif
}

}  // namespace trace_platform
