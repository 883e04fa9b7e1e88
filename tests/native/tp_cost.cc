// Instruction cost of a tracepoint, disabled and enabled, on the host build of
// the kernel's ring writer. Counted by valgrind --tool=callgrind (repeatable):
// the calls of tp_calls.hh, each holding one tracepoint and nothing else.
#include <stdio.h>
#include <stdlib.h>

#include "tp_calls.hh"
#include "host_ring.hh"

int main(int argc, char** argv) {
    unsigned long n = argc > 1 ? strtoul(argv[1], nullptr, 0) : 100000;
    static trace::ring r;
    static trace::header_slot mem[1 << 12];
    use_ring(r, mem, 1 << 12, trace::ring_mode::overwrite);
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
