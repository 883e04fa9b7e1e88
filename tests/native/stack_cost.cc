// Instruction cost of a record's stack on the host build of the kernel's writer, counted by
// valgrind --tool=callgrind (tests/bench/bench_stacks.py): each run_* function loops over one
// trace_marker, with its stack off or on, at the emitter's own depth or 8 frames deeper.
// Inclusive cost per iteration: on - off is what a stack costs a record; the difference of
// that difference between the two depths, over 8, what one more frame costs the walk.
#include <stdio.h>
#include <stdlib.h>

#include "host_ring.hh"

extern "C" {
__attribute__((noinline)) void at_depth(unsigned n, uint64_t v)
{
    if (n) {
        at_depth(n - 1, v);
    } else {
        trace_trace_marker(v, "bench");
    }
    asm volatile("" : : : "memory");
}

#define RUN(name, depth)                                   \
    __attribute__((noinline)) void name(unsigned long n)   \
    {                                                      \
        for (unsigned long i = 0; i < n; i++) {            \
            at_depth(depth, i);                            \
        }                                                  \
    }
RUN(run_off0, 0)
RUN(run_on0, 0)
RUN(run_off8, 8)
RUN(run_on8, 8)
}

int main(int argc, char** argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], nullptr, 0) : 100000;
    static trace::ring r;
    static trace::header_slot mem[1 << 12];
    use_ring(r, mem, 1 << 12, trace::ring_mode::overwrite);
    // the walk may read up to main's frame: it stops there (the C library keeps no frame pointers)
    uint64_t here = reinterpret_cast<uint64_t>(__builtin_frame_address(0));
    trace_platform::stack_lo = here - (1 << 20);
    trace_platform::stack_hi = here + 16;
    trace::enabled[trace::tp_trace_marker] = 1;
    run_off0(n);
    run_off8(n);
    trace::enabled[trace::tp_trace_marker] = 2;  // on, with its stack
    run_on0(n);
    run_on8(n);
    // the depth each stacked record took, from the last one's trailer (1 fixed slot + trailer)
    const uint8_t* last = reinterpret_cast<const uint8_t*>(&mem[(r.committed - 1) & r.mask]);
    uint64_t i = r.committed - 1;
    while (reinterpret_cast<const trace::header_slot*>(&mem[i & r.mask])->id == trace::id_cont) {
        i--;
    }
    last = reinterpret_cast<const uint8_t*>(&mem[(i + 1) & r.mask]);
    printf("committed %llu depth8 %u\n", (unsigned long long)r.committed, unsigned(last[4]));
    return 0;
}
