// The device the trace stream goes through, as the drain
// (core/trace_stream.cc) sees it. Core declares it; a driver fills one in and
// registers it with REGISTER_TRACE_PORT (drivers/virtio/trace_port.cc: the
// virtio console's ports), so core never names a driver. The registry is a
// linker section of pointers, like the apps' (core/app.hh).
//
// NOTE: the transmit queue has one owner, the drain thread: every function
// but start() and connected() is called by it alone.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace trace_port {

// A piece of a frame: `len` bytes at `addr`, read by the device (DMA).
struct piece {
    const void* addr;
    uint32_t len;
};

struct ops {
    const char* name;  // for messages: "virtio console"
    // Brings the device up serving two ports: trace::stream::port_name (the
    // frames) and trace::stream::ctl_port_name, whose bytes go to `ctl` (in a
    // thread of the driver's). False, after saying why on the console, if
    // there is no usable device. Thread context.
    bool (*start)(void (*ctl)(const char* data, size_t len, void* arg));
    // Whether the trace port is open and its host end connected (the host
    // discards what a port sends while nobody is connected).
    bool (*connected)();
    // The trace port's transmit queue: descriptors in all, and free now.
    unsigned (*size)();
    unsigned (*free_descriptors)();
    // Queues one chain of n pieces for the device to read; `token` comes back
    // from get_used. False, with nothing queued, if too few descriptors are free.
    bool (*add)(const piece* out, unsigned n, void* token);
    // Tells the device about everything added since the last kick.
    void (*kick)();
    // The next chain the device has finished with. False when there is none (yet).
    bool (*get_used)(void** token);
    // Sleeps until the device has finished with a chain (returns at once if
    // one is back already).
    void (*wait_used)();
};

}  // namespace trace_port

#define REGISTER_TRACE_PORT(ident) \
    __attribute__((used, section(".trace_ports"))) static const trace_port::ops* const ident##_entry = &ident

extern "C" const trace_port::ops* const __trace_ports_start[];
extern "C" const trace_port::ops* const __trace_ports_end[];

namespace trace_port {
// The registered ports, in link order: [first(), last()).
inline const ops* const* first() { return __trace_ports_start; }
inline const ops* const* last() { return __trace_ports_end; }
}  // namespace trace_port
