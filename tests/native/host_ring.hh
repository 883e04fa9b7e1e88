// A trace ring over host memory, made the calling thread's ring (a host thread is one
// "CPU" of trace_platform.hh): the set-up every native harness of the ring writer needs.
#pragma once

#include <stdint.h>

#include "generated/tracepoints.hh"

inline void use_ring(trace::ring& r, trace::header_slot* mem, uint64_t nslots, trace::ring_mode mode)
{
    r.magic = trace::ring_magic;
    r.mode = mode;
    r.nslots = nslots;
    r.mask = nslots - 1;
    r.slots_addr = reinterpret_cast<uint64_t>(mem);
    trace_platform::current_ring = &r;
}
