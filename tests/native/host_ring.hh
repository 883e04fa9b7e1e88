// A trace ring over host memory, made the calling thread's ring (a host thread is one
// "CPU" of trace_platform.hh), and the globals the host platform needs: the set-up every
// native harness of the ring writer needs. Include it in one file per program (each
// harness is one).
#pragma once

#include <stdint.h>

#include "generated/tracepoints.hh"

namespace trace {
volatile uint8_t enabled[tp_max + 1];
volatile uint8_t backtrace[tp_max + 1];
}
namespace trace_platform {
thread_local trace::ring* current_ring;
thread_local uint32_t current_thread = 7;
uint64_t fake_clock = 0;
}

inline void use_ring(trace::ring& r, trace::header_slot* mem, uint64_t nslots, trace::ring_mode mode)
{
    r.magic = trace::ring_magic;
    r.mode = mode;
    r.nslots = nslots;
    r.mask = nslots - 1;
    r.slots_addr = reinterpret_cast<uint64_t>(mem);
    trace_platform::current_ring = &r;
}
