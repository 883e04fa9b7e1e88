#include "tsc.hh"

#include "core/console.hh"
#include "lapic.hh"

namespace tsc {

uint64_t hz;
uint64_t lapic_hz;

namespace {

constexpr uint32_t pit_hz = 1193182;
constexpr uint16_t pit_cmd = 0x43, pit_ch0 = 0x40;
constexpr uint32_t window_pit_ticks = pit_hz / 1000;  // 1 ms
constexpr int windows = 3;
constexpr uint64_t fallback_hz = 1000000000;

// Fixed-point multipliers (32 fractional bits), so conversions on hot paths
// are a multiply and a shift, no division.
uint64_t ns_to_tsc_mult, tsc_to_ns_mult, tsc_to_lapic_mult;

uint16_t pit_read()
{
    arch::outb(pit_cmd, 0x00);  // latch channel 0
    uint8_t lo = arch::inb(pit_ch0);
    uint8_t hi = arch::inb(pit_ch0);
    return uint16_t(lo | (hi << 8));
}

struct sample {
    uint64_t tsc_hz, lapic_hz;
};

// One window: start at a PIT count edge, stop at the first edge at least
// window_pit_ticks later. Both edges are seen within one loop iteration (a
// few port reads), well under 0.1% of the window.
bool measure(sample* s)
{
    arch::outb(pit_cmd, 0x30);  // channel 0, lo/hi byte, mode 0, binary
    arch::outb(pit_ch0, 0xff);
    arch::outb(pit_ch0, 0xff);
    uint16_t prev = pit_read();
    uint16_t start;
    int spins = 0;
    while ((start = pit_read()) == prev) {
        if (++spins > 10000) {
            return false;  // the PIT does not count (or is absent: reads give 0xffff)
        }
    }
    uint64_t t0 = arch::rdtsc();
    lapic::calibrate_start();
    uint32_t elapsed;
    spins = 0;
    do {
        elapsed = uint16_t(start - pit_read());
        if (++spins > 1000000) {
            return false;  // stopped counting mid-window
        }
    } while (elapsed < window_pit_ticks);
    uint64_t t1 = arch::rdtsc();
    uint32_t counts = lapic::calibrate_end();
    s->tsc_hz = (t1 - t0) * pit_hz / elapsed;
    s->lapic_hz = uint64_t(counts) * pit_hz / elapsed;
    return true;
}

void set_rates(uint64_t tsc_rate, uint64_t lapic_rate)
{
    hz = tsc_rate;
    lapic_hz = lapic_rate;
    ns_to_tsc_mult = uint64_t((static_cast<unsigned __int128>(hz) << 32) / 1000000000u);
    tsc_to_ns_mult = uint64_t((static_cast<unsigned __int128>(1000000000u) << 32) / hz);
    tsc_to_lapic_mult = uint64_t((static_cast<unsigned __int128>(lapic_hz) << 32) / hz);
}

}  // namespace

bool calibrate()
{
    sample s[windows];
    int n = 0;
    for (int i = 0; i < windows; i++) {
        if (measure(&s[n])) {
            n++;
        }
    }
    // Median by TSC rate: one window stretched by the host descheduling the
    // vCPU between an edge and its rdtsc does not spoil the result.
    for (int i = 1; i < n; i++) {
        for (int j = i; j > 0 && s[j].tsc_hz < s[j - 1].tsc_hz; j--) {
            sample t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    }
    bool ok = n > 0;
    sample m = ok ? s[n / 2] : sample{0, 0};
    if (m.tsc_hz < 100000000ull || m.tsc_hz > 20000000000ull) {
        kprintf("tsc: calibration failed (%lu Hz from %d windows); assuming 1 GHz\n", m.tsc_hz, n);
        m.tsc_hz = fallback_hz;
        ok = false;
    }
    if (m.lapic_hz < 1000000ull || m.lapic_hz > 10000000000ull) {
        kprintf("lapic: timer calibration failed (%lu Hz); assuming 62.5 MHz\n", m.lapic_hz);
        m.lapic_hz = 62500000;  // QEMU: 1 GHz bus / 16
        ok = false;
    }
    set_rates(m.tsc_hz, m.lapic_hz);
    return ok;
}

uint64_t from_ns(uint64_t ns) { return uint64_t((static_cast<unsigned __int128>(ns) * ns_to_tsc_mult) >> 32); }

uint64_t to_ns(uint64_t ticks) { return uint64_t((static_cast<unsigned __int128>(ticks) * tsc_to_ns_mult) >> 32); }

uint32_t to_lapic(uint64_t ticks)
{
    unsigned __int128 c = (static_cast<unsigned __int128>(ticks) * tsc_to_lapic_mult) >> 32;
    return c > 0xffffffffu ? 0xffffffffu : c == 0 ? 1 : uint32_t(c);
}

}  // namespace tsc
