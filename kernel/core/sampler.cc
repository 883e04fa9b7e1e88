#include "core/sampler.hh"

#include "core/percpu.hh"
#include "core/timer.hh"
#include "core/trace.hh"
#include "generated/tracepoints.hh"
#include "interrupts.hh"
#include "tsc.hh"

namespace sampler {
namespace {

uint32_t rate_hz;
uint64_t period_ticks;
timer timers_of[max_cpus];  // one per CPU, armed and fired on that CPU only

// Runs from the LAPIC timer interrupt (timers::on_interrupt), interrupts off.
void tick(timer* t)
{
    const arch::interrupt_frame* f = this_cpu()->timer_frame;
    if (f) {
        // A leaf function that uses no stack keeps no frame (GCC 12 ignores
        // -mno-omit-leaf-frame-pointer there): the walk from rbp then starts at
        // its caller's caller. The word at rsp is its return address while it
        // has pushed nothing; recorded so a reader with the ELF's CFI can tell.
        uint64_t lo = 0, hi = 0;
        trace_platform::stack_bounds(&lo, &hi);
        uint64_t sp_word = (f->rsp >= lo && hi >= 8 && f->rsp <= hi - 8 && !(f->rsp & 7))
                               ? *reinterpret_cast<const uint64_t*>(f->rsp)
                               : 0;
        trace_cpu_sample(reinterpret_cast<const void*>(f->rip), sp_word, f->rbp);
    }
    // Keep the phase (due + period), unless the CPU fell behind by more than a
    // period (a long interrupts-off stretch): then restart from now, not a burst.
    uint64_t now = tsc::now();
    uint64_t due = t->due + period_ticks;
    timers::arm(t, due > now ? due : now + period_ticks);
}

}  // namespace

void set_hz(uint32_t hz)
{
    rate_hz = hz;
    trace_rt::set_sampler_hz(hz);
    if (hz) {
        trace::enabled[trace::tp_cpu_sample] = 1;
    }
}

void start_cpu()
{
    if (!rate_hz) {
        return;
    }
    if (!period_ticks) {  // TSC calibrated by now; every CPU computes the same value
        period_ticks = tsc::from_ns(1000000000ull / rate_hz);
    }
    timer* t = &timers_of[this_cpu()->id];
    t->fn = tick;
    timers::arm(t, tsc::now() + period_ticks);
}

}  // namespace sampler
