// The TSC is the kernel's clock (trace timestamps, timers, sleeps). Its rate
// is measured once at boot against the PIT, which runs at a known 1.193182 MHz
// on every machine type we boot on (pc, q35, microvm).
#pragma once

#include <stdint.h>

#include "cpu.hh"

namespace tsc {

extern uint64_t hz;        // TSC ticks per second
extern uint64_t lapic_hz;  // LAPIC timer counts per second (divide-by-16 applied)

// Measures both rates in three short PIT windows (~3 ms in all) and keeps the
// median. Returns false if the result is implausible; a fallback rate is used
// then and a warning printed.
bool calibrate();

inline uint64_t now() { return arch::rdtsc(); }

uint64_t from_ns(uint64_t ns);
uint64_t to_ns(uint64_t ticks);
inline uint64_t to_us(uint64_t ticks) { return to_ns(ticks) / 1000; }

// LAPIC timer counts covering `ticks` TSC ticks (saturates at 2^32-1).
uint32_t to_lapic(uint64_t ticks);

}  // namespace tsc
