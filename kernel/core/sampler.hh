// The timer sampler (sampler=HZ): every CPU records a cpu_sample from its
// LAPIC timer interrupt HZ times a second: the interrupted PC, the running
// thread (the record's tid) and the interrupted code's stack, walked from the
// interrupted frame pointer. A CPU profile without any other tracepoint.
//
// NOTE: the sampler keeps an idle CPU's timer ticking (a CPU with nothing to do
// otherwise takes no interrupts), so a profile shows idle time as samples in
// the idle thread, as profiles usually do.
#pragma once

#include <stdint.h>

namespace sampler {

// At boot, before any CPU runs its idle loop: the rate per CPU (0: off). Turns
// cpu_sample on, since the sampler records nothing else.
void set_hz(uint32_t hz);

// On each CPU, as it enters its idle loop: arms its sampling timer.
void start_cpu();

}  // namespace sampler
