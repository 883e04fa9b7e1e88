// Virtio devices, legacy interface (virtio 0.9.5 / the 1.x "legacy" chapter):
// the part of the device model that is the same over every transport, and
// the transport interface itself. Transports: virtio_pci (pc/q35, I/O BAR
// and MSI-X) and virtio_mmio (microvm, register layout version 1).
//
// Why legacy: QEMU 7.2's microvm exposes only version-1 virtio-mmio, and the
// legacy PCI interface is one I/O BAR; one split-ring implementation serves
// both (virtqueue.hh).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "irq.hh"

namespace virtio {

// Device types (virtio spec 5: device ID).
constexpr uint32_t type_net = 1;
constexpr uint32_t type_console = 3;

// Device status bits.
constexpr uint8_t status_acknowledge = 1;
constexpr uint8_t status_driver = 2;
constexpr uint8_t status_driver_ok = 4;
constexpr uint8_t status_failed = 128;

// Legacy queues: the used ring starts at this alignment after the avail ring.
constexpr uint64_t queue_align = 4096;

class transport {
public:
    virtual ~transport() = default;

    virtual const char* name() const = 0;  // for messages: "virtio-pci 00:03.0", "virtio-mmio 0xfeb00e00"
    virtual uint32_t device_type() const = 0;

    virtual void reset() = 0;
    virtual uint8_t status() = 0;
    virtual void set_status(uint8_t s) = 0;
    // Legacy devices offer and accept only feature bits 0..31.
    virtual uint32_t host_features() = 0;
    virtual void set_guest_features(uint32_t f) = 0;

    // Entries the device supports on queue q (0: no such queue).
    virtual uint16_t queue_max(unsigned q) = 0;
    // Hands the device queue q of `size` entries laid out at `paddr`
    // (page-aligned, legacy layout: virtqueue::bytes_for). False if refused.
    virtual bool queue_setup(unsigned q, uint16_t size, uint64_t paddr) = 0;
    virtual void notify(unsigned q) = 0;

    // Device-specific configuration space, byte offset off.
    virtual uint32_t config32(unsigned off) = 0;

    // Routes the device's interrupts to `fn(arg)` on the boot CPU (MSI-X on
    // PCI, the I/O APIC for MMIO). False if the device cannot interrupt.
    virtual bool setup_interrupt(irq::handler_fn fn, void* arg) = 0;
    // In the handler: acknowledges the interrupt (MMIO lines are level
    // triggered and stay up until this). Returns the ISR bits
    // (1: a queue was used, 2: configuration changed); MSI-X gives no bits, 1.
    virtual uint32_t ack_interrupt() = 0;
};

// The index-th device of `type` on any transport (PCI first, then the
// virtio-mmio slots), reset and acknowledged; nullptr if there is none.
transport* probe(uint32_t type, unsigned index);

}  // namespace virtio
