// The virtio-mmio transport, register layout version 1 (legacy): what QEMU
// 7.2's microvm provides, in 512-byte slots from 0xfeb00000. Nothing tells
// the kernel which slots hold devices (QEMU puts no virtio_mmio.device= on a
// PVH command line), so the slots are scanned for the magic value.
#pragma once

#include "drivers/virtio/virtio.hh"

namespace virtio {

// The index-th virtio-mmio device of `type`, or nullptr.
transport* probe_mmio(uint32_t type, unsigned index);

}  // namespace virtio
