// tpbench [N]: what a tracepoint costs on the fast path, in TSC ticks per
// call, disabled and enabled (trace_marker, one slot). Under TCG the TSC
// follows the host clock, so compare ratios, not absolute cycles.
#include "core/app.hh"
#include "core/console.hh"
#include "generated/tracepoints.hh"
#include "lib/string.hh"
#include "tsc.hh"

namespace {

// noinline: each loop is measured as compiled, not folded into its caller.
__attribute__((noinline)) uint64_t loop_marker(uint64_t n)
{
    uint64_t t0 = tsc::now();
    for (uint64_t i = 0; i < n; i++) {
        trace_trace_marker(i, "tpbench");
    }
    return tsc::now() - t0;
}

__attribute__((noinline)) uint64_t loop_empty(uint64_t n)
{
    uint64_t t0 = tsc::now();
    for (uint64_t i = 0; i < n; i++) {
        asm volatile("" : : "r"(i) : "memory");
    }
    return tsc::now() - t0;
}

// Ticks per call with one decimal, as tenths.
uint64_t tenths(uint64_t ticks, uint64_t n) { return (ticks * 10 + n / 2) / n; }

int tpbench_main(int argc, char** argv)
{
    uint64_t n = 200000;
    if (argc > 2 || (argc == 2 && (!parse_u64(argv[1], strlen(argv[1]), &n) || n == 0))) {
        kprintf("usage: tpbench [N]\n");
        return 2;
    }
    const uint8_t saved = trace::enabled[trace::tp_trace_marker];
    loop_marker(n / 10 + 1);  // warm up (TCG translates the loop once)
    trace::enabled[trace::tp_trace_marker] = 0;
    uint64_t off = tenths(loop_marker(n), n);
    trace::enabled[trace::tp_trace_marker] = 1;
    uint64_t on = tenths(loop_marker(n), n);
    trace::enabled[trace::tp_trace_marker] = saved;
    uint64_t empty = tenths(loop_empty(n), n);
    kprintf("tpbench: disabled %lu.%lu cycles enabled %lu.%lu cycles\n", off / 10, off % 10, on / 10,
            on % 10);
    kprintf("tpbench: (%lu iterations each; an empty loop costs %lu.%lu cycles per iteration)\n", n,
            empty / 10, empty % 10);
    return 0;
}

}  // namespace

REGISTER_APP(tpbench_app, "tpbench", "[N]  cost of a disabled and an enabled tracepoint", tpbench_main);
