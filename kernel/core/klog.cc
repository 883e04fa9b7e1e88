#include "core/klog.hh"

#include <atomic>

#include "trace/control.hh"

namespace klog {

char ring[size];

namespace {
// Bytes reserved so far (ahead of log_head while writers copy).
std::atomic<uint64_t> reserved{0};
}  // namespace

void append(const char* s, size_t n)
{
    // NOTE (SMP, no lock): each writer reserves its own range, copies into
    // it, then moves the published head forward to at least its end. With
    // concurrent writers the head can pass a range another CPU is still
    // copying for a moment; a reader may then see a few stale bytes just
    // before the head (a log ring, not a trace: nothing depends on them).
    uint64_t start = reserved.fetch_add(n, std::memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        ring[(start + i) & (size - 1)] = s[i];
    }
    // Release: a reader that sees the new head sees this writer's bytes.
    uint64_t end = start + n;
    uint64_t head = __atomic_load_n(&osvtrace_control.log_head, __ATOMIC_RELAXED);
    while (head < end &&
           !__atomic_compare_exchange_n(&osvtrace_control.log_head, &head, end, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED)) {
    }
}

}  // namespace klog
