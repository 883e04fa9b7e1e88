// COM1 (16550 UART at 0x3f8), polled. The human console only (~0.5 MB/s
// under TCG); trace data leaves the guest by other paths.
#pragma once

#include <stddef.h>

namespace serial {
void init();
void write(const char* s, size_t n);  // translates '\n' to "\r\n"
}  // namespace serial
