// PCI configuration space through the legacy I/O ports (0xcf8/0xcfc) and the
// bits drivers need: find a device, its BARs, bus mastering, MSI-X.
//
// NOTE: only bus 0 is scanned: QEMU's pc and q35 machines put -device PCI
// devices there unless told otherwise. SeaBIOS has assigned the BARs.
#pragma once

#include <stdint.h>

namespace pci {

struct device {
    uint8_t bus = 0, slot = 0, fn = 0;
    uint16_t vendor = 0, id = 0;
};

uint32_t read32(const device& d, uint8_t off);
uint16_t read16(const device& d, uint8_t off);
void write32(const device& d, uint8_t off, uint32_t v);
void write16(const device& d, uint8_t off, uint16_t v);

// The index-th (0, 1, ...) function on bus 0 with this vendor, a device id
// in [id_lo, id_hi] and this subsystem id (0xffff: any).
bool find(uint16_t vendor, uint16_t id_lo, uint16_t id_hi, uint16_t subsystem, unsigned index, device* out);

// BAR n: an I/O port base (is_io) or a memory address (64-bit BARs combined).
uint64_t bar(const device& d, unsigned n, bool* is_io);

// Turns on I/O and memory decoding and bus mastering. NOTE: without bus
// mastering a device's DMA silently does nothing (virtio queues stay idle).
void enable(const device& d);

// Programs MSI-X table entry `entry` to deliver `vector` to the CPU with
// `apic_id` (fixed, edge), unmasks it and enables MSI-X on the function.
// False if the function has no MSI-X capability or fewer entries.
bool msix_route(const device& d, unsigned entry, uint8_t vector, uint32_t apic_id);

}  // namespace pci
