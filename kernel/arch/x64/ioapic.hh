// I/O APICs: where device interrupt lines (GSIs) become LAPIC vectors. Used
// for microvm's virtio-mmio devices (PCI devices here use MSI-X instead).
//
// QEMU's microvm has one I/O APIC at 0xfec00000 (GSIs 0-23) and, with
// ioapic2 (its default), a second at 0xfec10000 (GSIs 24-47).
#pragma once

#include <stdint.h>

namespace ioapic {

// True if an I/O APIC answers at base (its version register reads sane).
bool present(uint64_t base);

// Routes a GSI to `vector` on the CPU with `apic_id`: fixed delivery,
// active high, level-triggered (virtio-mmio lines stay up until the driver
// acknowledges the device), unmasked. False if no I/O APIC serves the GSI.
bool route(uint32_t gsi, uint8_t vector, uint32_t apic_id);

}  // namespace ioapic
