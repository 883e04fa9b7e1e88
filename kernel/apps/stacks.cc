// stacks chain [--rounds N] | smash | spin [--ms MS] [--depth D] | bench [--n N]
//
// Known stacks for the tests of tracebt= and sampler= (tests/kernel/test_stacks_vm.py):
//
//   chain  a thread calls stacks_chain_a -> _b -> _c, which locks a mutex the
//          main thread holds: with tracebt=mutex_lock_wait the wait's stack
//          holds c, b, a in that order. N rounds (default 5).
//   smash  trace_marker records (label "smash") from a function whose saved
//          frame pointer is broken on purpose: value 1 points outside the stack,
//          2 at its own frame (a loop), 3 misaligned, 4 below its frame; then a
//          marker from 24 frames deep (value 5: cut by the depth bound) and one
//          from a plain call (value 6: complete). The frame is repaired before
//          the function returns; the kernel must simply survive the walks.
//   spin   CPU-bound for MS ms (default 4000): each round spends 3 units of
//          work in stacks_hot and 1 in stacks_cold (the same loop), called
//          from stacks_spin_loop, so a sampler sees ~3/4 of the time in hot.
//          --depth D: the work runs D extra (noinline) frames deep.
//   bench  TSC ticks per trace_marker: disabled, enabled,
//          enabled with its stack, and with its stack 8 frames deeper; prints
//          "stacks: bench off X on X stack X depth D deeper X depth D2"
//          (tests/bench/bench_stacks.py). Ticks with one decimal.
//
// The functions are extern "C" so the tests find them in the ELF by name.
#include "apps/busy.hh"
#include "apps/options.hh"
#include "core/app.hh"
#include "core/console.hh"
#include "core/mutex.hh"
#include "core/thread.hh"
#include "generated/tracepoints.hh"
#include "lib/string.hh"
#include "trace/stack.hh"
#include "tsc.hh"

namespace {

mutex chain_lock;

// Keeps a call a real call (no tail call: the caller's frame must stay on the stack).
inline void keep() { asm volatile("" : : : "memory"); }

}  // namespace

extern "C" {

__attribute__((noinline)) int stacks_chain_c(int x)
{
    chain_lock.lock();
    chain_lock.unlock();
    keep();
    return x + 1;
}

__attribute__((noinline)) int stacks_chain_b(int x)
{
    int r = stacks_chain_c(x + 1);
    keep();
    return r + 1;
}

__attribute__((noinline)) int stacks_chain_a(int x)
{
    int r = stacks_chain_b(x + 1);
    keep();
    return r + 1;
}

// Breaks its own saved frame pointer (the link to its caller's frame), emits a
// marker with its stack, and repairs the link before anything returns through it.
__attribute__((noinline)) void stacks_smash(uint64_t how)
{
    volatile uint64_t* fp = static_cast<volatile uint64_t*>(__builtin_frame_address(0));
    const uint64_t saved = fp[0];
    switch (how) {
    case 1: fp[0] = 0xdead0000dead0000ull; break;                    // outside any stack
    case 2: fp[0] = reinterpret_cast<uint64_t>(fp); break;           // itself: a loop
    case 3: fp[0] = saved + 4; break;                                // misaligned
    case 4: fp[0] = reinterpret_cast<uint64_t>(fp) - 64; break;      // below its own frame
    }
    keep();
    trace_trace_marker(how, "smash");
    fp[0] = saved;
    keep();
}

__attribute__((noinline)) void stacks_deep(uint64_t n, uint64_t value)
{
    if (n == 0) {
        trace_trace_marker(value, "smash");
    } else {
        stacks_deep(n - 1, value);
    }
    keep();
}

// The same loop in both: what differs is only how long each runs.
__attribute__((noinline)) void stacks_hot(uint64_t loops)
{
    for (uint64_t i = 0; i < loops; i++) {
        asm volatile("" : : "r"(i) : "memory");
    }
}

__attribute__((noinline)) void stacks_cold(uint64_t loops)
{
    for (uint64_t i = 0; i < loops; i++) {
        asm volatile("" : : "r"(i) : "memory");
    }
}

__attribute__((noinline)) uint64_t stacks_spin_loop(uint64_t until, uint64_t unit)
{
    uint64_t rounds = 0;
    while (tsc::now() < until) {
        stacks_hot(3 * unit);
        stacks_cold(unit);
        rounds++;
    }
    keep();
    return rounds;
}

__attribute__((noinline)) uint64_t stacks_spin_deep(uint64_t depth, uint64_t until, uint64_t unit)
{
    uint64_t r = depth ? stacks_spin_deep(depth - 1, until, unit) : stacks_spin_loop(until, unit);
    keep();
    return r;
}

// The bench's emitter, n frames below its caller; with `count`, instead of emitting it
// walks from the same depth the emitter's walk would start at and returns the frames.
__attribute__((noinline)) unsigned stacks_count_frames()
{
    uint64_t lo = 0, hi = 0, frames[trace::stack_max_frames];
    uint8_t end = 0;
    trace_platform::stack_bounds(&lo, &hi);
    unsigned n = trace::walk_stack(reinterpret_cast<uint64_t>(__builtin_frame_address(0)), lo, hi, frames,
                                   trace::stack_max_frames, &end);
    keep();
    return n;
}

__attribute__((noinline)) unsigned stacks_bench_at(uint64_t n, uint64_t v, bool count)
{
    unsigned r = 0;
    if (n) {
        r = stacks_bench_at(n - 1, v, count);
    } else if (count) {
        r = stacks_count_frames();
    } else {
        trace_trace_marker(v, "bench");
    }
    keep();
    return r;
}

__attribute__((noinline)) uint64_t stacks_bench_loop(uint64_t n, uint64_t depth)
{
    uint64_t t0 = tsc::now();
    for (uint64_t i = 0; i < n; i++) {
        stacks_bench_at(depth, i, false);
    }
    return tsc::now() - t0;
}

}  // extern "C"

namespace {

void chain_thread(void*) { stacks_chain_a(0); }

int chain(uint64_t rounds)
{
    for (uint64_t i = 0; i < rounds; i++) {
        chain_lock.lock();
        thread* t = threads::create("chain", chain_thread, nullptr);
        if (!t) {
            kprintf("stacks: cannot create a thread\n");
            return 1;
        }
        threads::sleep_ns(5000000);  // it runs into the held lock and waits
        chain_lock.unlock();
        threads::join(t);
    }
    kprintf("stacks: chain rounds=%lu\n", rounds);
    return 0;
}

int smash()
{
    for (uint64_t how = 1; how <= 4; how++) {
        stacks_smash(how);
    }
    stacks_deep(24, 5);
    stacks_deep(0, 6);
    kprintf("stacks: smash survived\n");
    return 0;
}

int spin(uint64_t ms, uint64_t depth)
{
    // One work unit ~100 us: thousands of hot/cold alternations per second, so slow
    // phases of the host (other VMs, TCG translation) fall on both alike.
    uint64_t unit = busy::loops_per_us() * 100;
    uint64_t rounds = stacks_spin_deep(depth, tsc::now() + tsc::from_ns(ms * 1000000), unit);
    kprintf("stacks: spin rounds=%lu unit=%lu\n", rounds, unit);
    return 0;
}

// Ticks per call with one decimal, as tenths.
uint64_t tenths(uint64_t ticks, uint64_t n) { return (ticks * 10 + n / 2) / n; }

int bench(uint64_t n)
{
    constexpr uint64_t deeper = 8;
    // the flag byte the emitters read: 0 off, 1 on, 2 on with the stack (core/trace.cc)
    volatile uint8_t* flag = &trace::enabled[trace::tp_trace_marker];
    const uint8_t saved = *flag;
    stacks_bench_loop(n / 10 + 1, 0);  // warm up (TCG translates the code once)
    *flag = 0;
    uint64_t off = tenths(stacks_bench_loop(n, 0), n);
    *flag = 1;
    uint64_t plain = tenths(stacks_bench_loop(n, 0), n);
    *flag = 2;
    stacks_bench_loop(n / 10 + 1, deeper);  // warm up the deeper path too
    uint64_t stack = tenths(stacks_bench_loop(n, 0), n);
    uint64_t deep = tenths(stacks_bench_loop(n, deeper), n);
    *flag = saved;
    unsigned d0 = stacks_bench_at(0, 0, true), d1 = stacks_bench_at(deeper, 0, true);
    kprintf("stacks: bench off %lu.%lu on %lu.%lu stack %lu.%lu depth %u deeper %lu.%lu depth %u\n", off / 10,
            off % 10, plain / 10, plain % 10, stack / 10, stack % 10, d0, deep / 10, deep % 10, d1);
    return 0;
}

int stacks_main(int argc, char** argv)
{
    if (argc < 2) {
        kprintf("usage: stacks chain [--rounds N] | smash | spin [--ms MS] [--depth D] | bench [--n N]\n");
        return 2;
    }
    const char* mode = argv[1];
    uint64_t rounds = 5, ms = 4000, depth = 0, n = 100000;
    app_option opts[] = {{"rounds", &rounds, 1, 10000000}, {"ms", &ms, 1, 600000}, {"depth", &depth, 0, 64},
                         {"n", &n, 1, 100000000}};
    if (!parse_app_options(argc - 1, argv + 1, opts, "stacks")) {
        return 2;
    }
    if (!strcmp(mode, "chain")) {
        return chain(rounds);
    }
    if (!strcmp(mode, "smash")) {
        return smash();
    }
    if (!strcmp(mode, "spin")) {
        return spin(ms, depth);
    }
    if (!strcmp(mode, "bench")) {
        return bench(n);
    }
    kprintf("stacks: unknown mode '%s' (chain, smash, spin, bench)\n", mode);
    return 2;
}

}  // namespace

REGISTER_APP(stacks_app, "stacks", "chain|smash|spin|bench  known stacks for tracebt= and sampler=", stacks_main);
