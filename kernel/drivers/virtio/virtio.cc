#include "drivers/virtio/virtio.hh"

#include "drivers/virtio/virtio_mmio.hh"
#include "drivers/virtio/virtio_pci.hh"
#include "pci.hh"

namespace virtio {

transport* probe(uint32_t type, unsigned index)
{
    transport* t = probe_pci(type, index);
    // No PCI host bridge at 00:00.0 means microvm: only then scan the MMIO
    // slots (on q35 that range may hold BARs, whose registers are not ours to read).
    pci::device host{};
    if (!t && (pci::read32(host, 0) & 0xffff) == 0xffff) {
        t = probe_mmio(type, index);
    }
    if (t) {
        t->reset();
        t->set_status(status_acknowledge);
        t->set_status(status_acknowledge | status_driver);
    }
    return t;
}

}  // namespace virtio
