#include "tsc_sync.hh"

#include <atomic>

#include "cpu.hh"

namespace tsc_sync {
namespace {

constexpr unsigned max_rounds = 16, min_rounds = 4;
constexpr uint64_t done = ~uint64_t(0);

// One cache line each way: the request/answer ping-pong is the measurement.
struct alignas(64) line {
    std::atomic<uint64_t> v{0};
};
line request;  // round number from the boot CPU (done: stop)
line reply;    // round number answered
line ap_tsc;   // the AP's TSC for that round

// lfence keeps rdtsc from being executed ahead of the load that observed the
// other side's store (rdtsc is not ordered with loads otherwise).
inline uint64_t stamp()
{
    asm volatile("lfence" : : : "memory");
    return arch::rdtsc();
}

}  // namespace

void reset()
{
    request.v.store(0, std::memory_order_relaxed);
    reply.v.store(0, std::memory_order_relaxed);
}

bool measure(result* r, uint64_t timeout_ticks, uint64_t good_rtt)
{
    r->offset = 0;
    r->rtt = ~uint64_t(0);
    r->rounds = 0;
    bool ok = true;
    const uint64_t start = arch::rdtsc(), budget = timeout_ticks / 50;
    for (unsigned i = 0; i < max_rounds && ok; i++) {
        uint64_t n = i + 1;
        uint64_t t0 = stamp();
        request.v.store(n, std::memory_order_release);
        while (reply.v.load(std::memory_order_acquire) != n) {
            if (arch::rdtsc() - t0 > timeout_ticks) {
                ok = false;
                break;
            }
            arch::cpu_relax();
        }
        if (!ok) {
            break;
        }
        uint64_t t1 = stamp();
        uint64_t ta = ap_tsc.v.load(std::memory_order_relaxed);
        if (t1 - t0 < r->rtt) {
            r->rtt = t1 - t0;
            // ta - (t0 + t1) / 2 without overflowing the sum
            r->offset = int64_t(ta - t0) - int64_t((t1 - t0) / 2);
        }
        r->rounds++;
        if (r->rounds >= min_rounds && r->rtt <= good_rtt) {
            break;  // precise enough: under TCG each extra round can cost a host time slice
        }
        if (r->rounds >= min_rounds && arch::rdtsc() - start > budget) {
            break;  // a loaded host: take the best of what we have (the error is reported)
        }
    }
    request.v.store(done, std::memory_order_release);
    // The true offset lies within +-rtt/2 of the estimate. If 0 is in that
    // range, say 0: synchronised TSCs (QEMU's, most hardware's) are the
    // common case, and a noisy estimate would only skew the timeline.
    int64_t half = int64_t(r->rtt / 2);
    if (r->rounds && r->offset >= -half && r->offset <= half) {
        r->offset = 0;
    }
    return ok && r->rounds > 0;
}

void answer()
{
    uint64_t last = 0;
    for (;;) {
        uint64_t n = request.v.load(std::memory_order_acquire);
        if (n == done) {
            return;
        }
        if (n != last) {
            ap_tsc.v.store(stamp(), std::memory_order_relaxed);
            reply.v.store(n, std::memory_order_release);
            last = n;
            continue;
        }
        arch::cpu_relax();
    }
}

}  // namespace tsc_sync
