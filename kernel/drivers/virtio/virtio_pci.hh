// The legacy virtio-pci transport: registers in I/O BAR 0, interrupts by
// MSI-X (one vector for every queue). PCI ids 1af4:1000..103f.
#pragma once

#include "drivers/virtio/virtio.hh"
#include "pci.hh"

namespace virtio {

// The index-th legacy virtio-pci device of `type` on bus 0, or nullptr.
transport* probe_pci(uint32_t type, unsigned index);

}  // namespace virtio
