// The measured functions of the host tracepoint benchmarks (tp_cost.cc for
// callgrind, tests/bench/peers/tp_ours.cc against LTTng-UST; the host platform's
// globals come from host_ring.hh). Include it in one file per program: each
// noinline function holds one tracepoint and nothing else, so its cost per call
// minus empty_call()'s is the tracepoint's.
#pragma once

#include <stdint.h>

#include "generated/tracepoints.hh"

__attribute__((noinline)) void empty_call(uint32_t tid, uint16_t cpu) {
    asm volatile("" : : "r"(tid), "r"(cpu));
}
__attribute__((noinline)) void disabled_call(uint32_t tid, uint16_t cpu) {
    trace_sched_wake(tid, cpu);
}
__attribute__((noinline)) void enabled_call(uint32_t tid, uint16_t cpu) {
    trace_sched_wake(tid, cpu);
}
