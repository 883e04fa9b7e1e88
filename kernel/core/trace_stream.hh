// Streaming the trace rings to the host (tracemode=stream): a drain thread
// moves committed records from every CPU's ring to the virtio-serial port
// org.osvtrace.trace, framed as include/trace/stream.hh says; commands come
// back on org.osvtrace.ctl (core/trace_ctl.cc).
//
// NOTE: tracepoint writers never wait for the drain. The drain sends ring
// memory itself (a descriptor chain: frame header + the ring's slot range,
// two pieces when it wraps) and moves the ring's tail only once the device
// has consumed the buffer; until then the writer cannot reuse those slots,
// and a full ring drops and counts (ring.hh).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace trace_stream {

// Drain period: how long the drain sleeps when the rings are (nearly) empty,
// and so the longest a record or a control reply waits before it is sent.
constexpr uint64_t period_us = 5000;

// Before the app: if the rings are in stream mode and a registered trace port
// (core/trace_port.hh; the virtio console's) comes up, waits (a bounded time)
// for the host to connect and starts the drain thread. Thread context.
void start();

// After the app: sends everything committed so far, the final lost counters
// and the end frame, and waits until the device has consumed all of it.
void finish(int status);

// From the control port's handler (core/trace_ctl.cc).
void request_flush(uint32_t id);
void request_stop(uint32_t id);
void post_ack(uint32_t id, int32_t result, const char* msg);

// core/trace_ctl.cc: bytes the host sent on the control port.
void ctl_receive(const char* data, size_t len, void* arg);

}  // namespace trace_stream
