// The virtio-net driver (legacy interface, on virtio-pci or virtio-mmio:
// whichever transport virtio::probe finds): one receive queue, one transmit
// queue, no offloads (every checksum is computed by the stack, on the CPU
// that uses the packet: net/channel.hh).
//
// Threads and ownership:
//  - The receive thread ("net-rx", pinned to CPU 0) owns the device: it sets
//    it up on its own CPU (so the interrupt arrives where it runs), owns the
//    receive queue, and hands every frame to net::netif::input (classify and
//    push into a socket's channel). The interrupt handler only acknowledges
//    the device and wakes it.
//  - Any thread transmits: frames go onto a lock-free queue; whichever
//    sender finds the transmit queue unattended moves the queued frames into
//    it (a combining flag, not a lock: nobody ever waits for it, a sender
//    that finds it taken leaves its frame to the holder). When the ring is
//    full the frames wait for the device's interrupt, which wakes the
//    receive thread to move them.
#pragma once

#include <stdint.h>

#include "net/pbuf.hh"

namespace virtio_net {

// Finds the first virtio-net device, starts the receive thread, which sets
// the device up, and waits for it. Fills mac. Thread context. False, after
// saying why on the console, if there is no usable device.
bool start(uint8_t* mac);

// Any thread: queues the frame (p->len bytes at p->frame) for transmission;
// traces net_tx (and net_packet) when it enters the device's ring. Consumes p.
void transmit(net::pbuf* p);

}  // namespace virtio_net
