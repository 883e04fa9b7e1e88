// The tracer's control block: the one structure a host-side reader needs to
// find everything else (rings, enable flags, clock, thread names, kernel log).
//
// The kernel defines exactly one, `osvtrace_control` (extern "C", so its symbol
// name is stable for gdb and pyelftools). Its layout is fixed and mirrored in
// osvtrace/layout.py; the magic lets a reader of a raw RAM file find it even
// without symbols. Everything here is written once at boot, except the thread
// table entries (written at thread creation) and the log ring's head.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace trace {

constexpr unsigned max_cpus = 64;
constexpr uint64_t control_magic = 0x4c52544354565f4fULL;  // "O_VTCTRL" little-endian
constexpr uint32_t control_version = 1;
constexpr unsigned thread_name_len = 24;

// One entry per thread id (index == tid, tid < threads_max).
struct thread_entry {
    uint32_t tid;    // 0: unused entry
    uint32_t flags;  // bit 0: exited
    char name[thread_name_len];  // NUL-padded
};
static_assert(sizeof(thread_entry) == 32, "thread entry size");

struct control {
    uint64_t magic;
    uint32_t version;
    uint32_t ncpus;        // CPUs online (rings[0..ncpus) valid)
    uint64_t tsc_hz;       // calibrated TSC frequency
    uint64_t tsc_boot;     // TSC at kernel entry (time zero of the trace)
    uint64_t enabled_addr; // uint8_t enabled[tp_max + 1]: nonzero = on
    uint32_t tp_max;       // highest tracepoint id
    uint32_t slot_size;    // 32
    uint64_t threads_addr; // thread_entry[threads_max]
    uint32_t threads_max;
    uint32_t log_size;     // bytes in the kernel log ring (a power of two)
    uint64_t log_addr;     // char log[log_size]
    volatile uint64_t log_head;  // bytes ever written to the log ring
    uint64_t cmdline_addr; // NUL-terminated kernel command line
    uint64_t build_id_addr;  // NUL-terminated build id string
    uint64_t backtrace_addr; // uint8_t backtrace[tp_max + 1]: nonzero = stacks asked for (enabled[] = 2 then)
    uint32_t sampler_hz;     // the timer sampler's rate per CPU (sampler=HZ), 0: off
    uint32_t reserved32;
    uint64_t reserved[3];
    uint64_t rings[max_cpus];      // address of each CPU's trace::ring
    int64_t tsc_offset[max_cpus];  // subtract from CPU n's TSC to align with CPU 0
};

static_assert(offsetof(control, tsc_hz) == 16, "control tsc_hz");
static_assert(offsetof(control, enabled_addr) == 32, "control enabled_addr");
static_assert(offsetof(control, threads_addr) == 48, "control threads_addr");
static_assert(offsetof(control, log_addr) == 64, "control log_addr");
static_assert(offsetof(control, backtrace_addr) == 96, "control backtrace_addr");
static_assert(offsetof(control, rings) == 136, "control rings");
static_assert(sizeof(control) == 136 + 16 * max_cpus, "control size");

}  // namespace trace

extern "C" trace::control osvtrace_control;
