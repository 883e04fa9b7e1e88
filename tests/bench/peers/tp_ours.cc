// osvtrace's side of the tracepoint comparison: the kernel's ring writer
// (kernel/include/trace/ring.hh) built for the host, one flight-recorder ring of
// 4096 slots (128 KiB), sched_wake (uint32_t tid, uint16_t cpu). The host platform
// (tests/native/trace_platform.hh) takes timestamps with rdtsc as the kernel does.
#include "tp_calls.hh"
#include "host_ring.hh"
#include "tp_harness.hh"

static trace::ring ring_;
static trace::header_slot mem[1 << 12];

void set_enabled(bool on) {
    trace::enabled[trace::tp_sched_wake] = on;
}

void setup() {
    use_ring(ring_, mem, 1 << 12, trace::ring_mode::overwrite);
}

unsigned long events_written() {
    return (unsigned long)ring_.committed;
}
