// The virtio console (virtio-serial) driver, multiport: named ports over one
// device. The host side is QEMU's `-device virtio-serial-{pci,device}` with
// `-device virtserialport,name=NAME,chardev=...`.
//
// One service thread owns the device: it does the control handshake
// (DEVICE_READY; PORT_READY for each port QEMU adds; PORT_OPEN for the ports
// we serve once their PORT_NAME arrives) and receives data on the ports that
// have a receiver. Each served port's transmit queue belongs to exactly one
// user thread (tx_queue). The interrupt handler only acknowledges the device
// and wakes the service thread and the transmitting threads.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/event.hh"
#include "drivers/virtio/virtqueue.hh"

namespace virtio_console {

// A port this kernel serves, by name. `receive` (optional) runs in the
// service thread with each chunk of bytes the host sends.
struct port_spec {
    const char* name;
    void (*receive)(const char* data, size_t len, void* arg);
    void* arg;
};

struct port;

// Finds the first virtio console device, negotiates MULTIPORT and starts the
// service thread that serves `specs` (kept by pointer). Thread context.
// Returns false, after saying why on the console, if there is no usable device.
bool start(const port_spec* specs, unsigned nspecs);

// The port serving specs[i] once the handshake has opened it (nullptr until then).
port* find(unsigned spec_index);

// Whether the host end of the port is connected (QEMU discards what a port
// sends while nobody is connected on the host side).
bool host_connected(const port* p);

// The port's transmit queue and the event its owner waits on for used
// buffers (the owner disables the queue's interrupts while not waiting).
virtio::virtqueue* tx_queue(port* p);
event* tx_event(port* p);

}  // namespace virtio_console
