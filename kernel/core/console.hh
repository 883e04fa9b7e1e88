// The kernel console: COM1 (arch/x64/serial) plus the kernel log ring
// (core/klog). Each call writes its bytes with interrupts off, so lines from
// different threads never interleave.
#pragma once

#include <stdarg.h>
#include <stddef.h>

namespace console {
void init();
void write(const char* s, size_t n);
}  // namespace console

int kprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int vkprintf(const char* fmt, va_list ap);
