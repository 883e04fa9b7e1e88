// The network device under net::netif, as the stack sees it. net/ declares
// it; a driver fills one in and registers it with REGISTER_NETDEV
// (drivers/virtio/net.cc), so the stack never names a driver. The driver
// hands each received frame to net::netif::input. The registry is a linker
// section of pointers, like the apps' (core/app.hh).
#pragma once

#include <stdint.h>

#include "net/pbuf.hh"

namespace net::netdev {

struct ops {
    const char* name;  // for messages: "virtio-net"
    // Finds the device and starts it; fills mac. Thread context. False,
    // after saying why on the console, if there is no usable device.
    bool (*start)(uint8_t* mac);
    // Any thread: queues the frame (p->len bytes at p->frame) for
    // transmission. Consumes p.
    void (*transmit)(pbuf* p);
};

}  // namespace net::netdev

#define REGISTER_NETDEV(ident) \
    __attribute__((used, section(".net_devices"))) static const net::netdev::ops* const ident##_entry = &ident

extern "C" const net::netdev::ops* const __net_devices_start[];
extern "C" const net::netdev::ops* const __net_devices_end[];

namespace net::netdev {
// The registered devices, in link order: [first(), last()).
inline const ops* const* first() { return __net_devices_start; }
inline const ops* const* last() { return __net_devices_end; }
}  // namespace net::netdev
