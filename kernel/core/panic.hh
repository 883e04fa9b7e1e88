// Fatal errors: a message, a backtrace (frame-pointer walk, symbolised from
// the table the build links in), then QEMU exits with the panic status
// (arch/x64/debug_exit.cc has the mapping).
#pragma once

#include <stdint.h>

[[noreturn]] void panic(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// For handlers that print their own report: panic_begin() masks interrupts
// and stops a nested panic from recursing; panic_end() prints the tail and exits.
void panic_begin();
[[noreturn]] void panic_end();

// Prints "  #n 0xADDR symbol+0xOFF" lines, starting with `rip` if nonzero,
// then walking the rbp chain.
void print_backtrace(uint64_t rbp, uint64_t rip);

// The function containing addr, or nullptr; *offset gets addr - its start.
const char* ksym_lookup(uint64_t addr, uint64_t* offset);
