// A small printf: %d %i %u %x %X %p %s %c %%, with the l/ll/z length
// modifiers, a width, '0' and '-' flags, and a precision for %s (%.*s too).
// No floating point (the kernel is built without SSE).
#pragma once

#include <stdarg.h>
#include <stddef.h>

// Returns the length the full output would have (like C's vsnprintf); the
// buffer always ends with a NUL when size > 0.
// C linkage: the standard names (a libstdc++ header such as <atomic> may
// declare them extern "C" first, and the declarations must agree).
extern "C" {
int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap);
int snprintf(char* buf, size_t size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
}
