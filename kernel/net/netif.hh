// The network interface: its addresses, the receive entry point the NIC
// driver calls for every frame, the transmit entry point every sender uses,
// and the interface's counters.
//
//   driver's receive thread -> input(p): classify (classify.hh)
//       -> a socket's net channel (channel.hh)   [consumer CPU: udp.hh]
//       -> the default path: ARP, ICMP echo, or counted drop [receive thread]
//   any thread -> output(p) -> driver's transmit queue
//
// Addresses: QEMU's user-mode network (slirp) puts the guest at 10.0.2.15/24
// with the gateway (the host, for forwarded ports) at 10.0.2.2; those are the
// defaults. FIXME: no DHCP and no kernel option to change them yet (with
// --net tap, give the host's tap an address in 10.0.2.0/24).
#pragma once

#include <stdint.h>

#include "net/ethernet.hh"
#include "net/pbuf.hh"

namespace net::netif {

struct iface {
    uint8_t mac[mac_len];
    uint32_t ip;       // host order
    uint32_t mask;     // host order
    uint32_t gateway;  // host order
};

// The interface's configuration (valid once up() returned true).
const iface& config();

// Brings the interface up: finds and starts the NIC (virtio-net on PCI or
// MMIO), then asks for the gateway's MAC. Idempotent; thread context.
// False, after saying why on the console, if there is no usable NIC.
bool up();

// The NIC's receive thread, for each frame it takes from the device
// (p->packet and p->len set). Consumes p.
void input(pbuf* p);

// Any thread: sends the frame in p (p->len bytes, p->packet set). Consumes p.
void output(pbuf* p);

// Counts a dropped frame with a reason (the first few are printed) and frees it.
void count_drop(pbuf* p, const char* why);

struct stats {
    uint64_t rx;            // frames from the device
    uint64_t to_channel;    // pushed into a socket's channel (including channel-full drops)
    uint64_t default_path;  // handled by the default path (ARP, ICMP, unknown port)
    uint64_t dropped;       // not for us, malformed, or no handler
    uint64_t tx;            // frames handed to the device
};
stats counters();
void print_counters(const char* who);

}  // namespace net::netif
