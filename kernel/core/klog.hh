// The kernel log ring: every console byte also lands here, so gdb (or a
// post-mortem reader of guest RAM) can read the console history ("dmesg")
// through osvtrace_control.log_addr/log_size/log_head.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace klog {

constexpr uint32_t size = 64 * 1024;  // a power of two
static_assert((size & (size - 1)) == 0, "log ring size must be a power of two");

extern char ring[size];

// Appends n bytes; any context, any CPU (lock-free).
void append(const char* s, size_t n);

}  // namespace klog
