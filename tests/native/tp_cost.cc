// Instruction cost of a tracepoint, disabled and enabled, on the host build of
// the kernel's ring writer. Counted by valgrind --tool=callgrind (repeatable):
// the calls of tp_calls.hh, each holding one tracepoint and nothing else.
#include <stdio.h>
#include <stdlib.h>

#include "tp_calls.hh"

int main(int argc, char** argv) {
    unsigned long n = argc > 1 ? strtoul(argv[1], nullptr, 0) : 100000;
    static trace::ring r;
    static trace::header_slot mem[1 << 12];
    r.magic = trace::ring_magic;
    r.mode = trace::ring_mode::overwrite;
    r.nslots = 1 << 12;
    r.mask = r.nslots - 1;
    r.slots_addr = reinterpret_cast<uint64_t>(mem);
    trace_platform::current_ring = &r;
    for (unsigned long i = 0; i < n; i++) {
        empty_call(uint32_t(i), 1);
    }
    for (unsigned long i = 0; i < n; i++) {
        disabled_call(uint32_t(i), 1);
    }
    trace::enabled[trace::tp_sched_wake] = 1;
    for (unsigned long i = 0; i < n; i++) {
        enabled_call(uint32_t(i), 1);
    }
    printf("committed %llu\n", (unsigned long long)r.committed);
    return r.committed == n ? 0 : 1;
}
