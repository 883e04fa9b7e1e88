// LTTng-UST's side of the tracepoint comparison: the same loops as tp_ours.cc
// (tp_harness.hh), with the provider built into the program. Enabled means a
// running lttng session has enabled osvtrace_bench:on (the Python runner sets it
// up); osvtrace_bench:off stays disabled.
#define LTTNG_UST_TRACEPOINT_DEFINE
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#include "tp_lttng_provider.h"
#include "tp_harness.hh"


__attribute__((noinline)) void empty_call(uint32_t tid, uint16_t cpu) {
    asm volatile("" : : "r"(tid), "r"(cpu));
}
__attribute__((noinline)) void disabled_call(uint32_t tid, uint16_t cpu) {
    lttng_ust_tracepoint(osvtrace_bench, off, tid, cpu);
}
__attribute__((noinline)) void enabled_call(uint32_t tid, uint16_t cpu) {
    lttng_ust_tracepoint(osvtrace_bench, on, tid, cpu);
}

void set_enabled(bool) {}  // the session decides, before the program starts

void setup() {}

// NOTE: the program cannot see LTTng's buffers; the runner checks that the session
// recorded events (a snapshot) instead. Reports whether the probe is live.
unsigned long events_written() {
    return lttng_ust_tracepoint_enabled(osvtrace_bench, on) ? 1 : 0;
}
