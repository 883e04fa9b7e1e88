// The trace runtime: per-CPU rings (kernel/include/trace/ring.hh), the enable
// flags, and the control block osvtrace_control through which gdb, the shared
// RAM reader and the stream drain find everything
// (kernel/include/trace/control.hh).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "trace/ring.hh"

struct cpu;

namespace trace_rt {

constexpr uint64_t default_buf_bytes = 4ull << 20;
constexpr uint64_t min_buf_bytes = 4096;
constexpr uint64_t max_buf_bytes = 1ull << 30;

// Fills the fields known before memory is up: magic-less control block with
// the log ring, thread table, enable flags, command line and build id.
void early_init(const char* cmdline, const char* build_id);

// Rounds a requested per-CPU ring size to a power of two of slots, within
// [min_buf_bytes, max_buf_bytes]. Returns 0 if out of range.
uint64_t ring_bytes_for(uint64_t requested);

// Sets the enable flag of every tracepoint matched by one of the anchored
// globs in the comma-separated list [globs, globs+len). A glob matching
// nothing is an error (printed); returns false then.
// Sets (value 1) or clears (0) the flag of every tracepoint matched by one of the
// comma-separated anchored globs: the boot's trace= and the host's ctl enable/disable.
// Returns how many matched, or -1 with `err` filled when a glob matches nothing (then
// nothing is changed).
int set_flags(const char* globs, size_t len, uint8_t value, char* err, size_t errlen);
// The same for the backtrace flags (tracebt=, ctl backtrace/nobacktrace): whether an
// enabled tracepoint's records carry its stack. A glob matching only tracepoints that
// take no stack (schema: stack = "none" or "always") matches nothing.
int set_backtrace(const char* globs, size_t len, uint8_t value, char* err, size_t errlen);
// trace= at boot: set_flags(.., 1, ..), its refusal printed on the console.
bool enable_globs(const char* globs, size_t len);
// tracebt= at boot: set_backtrace(.., 1, ..), its refusal printed on the console.
bool backtrace_globs(const char* globs, size_t len);
// sampler=HZ at boot: published in the control block.
void set_sampler_hz(uint32_t hz);

// Allocates and publishes c's ring (ring_bytes per CPU, as rounded above)
// and its TSC offset against CPU 0 (control.hh: the decoder subtracts it).
bool init_cpu(cpu* c, uint64_t ring_bytes, trace::ring_mode mode, int64_t tsc_offset = 0);

// Publishes the control block (the magic last) once CPU 0's ring exists.
void publish(uint64_t tsc_hz, uint64_t tsc_boot);

// The thread table the host reads names from (index == tid).
void thread_started(uint32_t tid, const char* name);
void thread_exited(uint32_t tid);

// Grows after every thread_started (the stream's drain sends new names
// when it changes).
uint32_t names_generation();

}  // namespace trace_rt
