#include "drivers/virtio/virtio_pci.hh"

#include "core/console.hh"
#include "cpu.hh"
#include "lapic.hh"
#include "lib/printf.hh"

namespace virtio {
namespace {

constexpr uint16_t vendor_redhat = 0x1af4;
// Transitional (legacy-capable) devices have ids 0x1000..0x103f and carry
// the virtio device type in their PCI subsystem id.
constexpr uint16_t legacy_id_first = 0x1000, legacy_id_last = 0x103f;

// Legacy register offsets in BAR 0 (virtio 1.x, 4.1.4.8).
enum : uint16_t {
    reg_host_features = 0x00,
    reg_guest_features = 0x04,
    reg_queue_pfn = 0x08,
    reg_queue_num = 0x0c,     // u16
    reg_queue_select = 0x0e,  // u16
    reg_queue_notify = 0x10,  // u16
    reg_status = 0x12,        // u8
    reg_isr = 0x13,           // u8, read clears
    reg_config_vector = 0x14, // u16, only while MSI-X is enabled
    reg_queue_vector = 0x16,  // u16, only while MSI-X is enabled
};
constexpr uint16_t config_plain = 0x14;  // device config without MSI-X ...
constexpr uint16_t config_msix = 0x18;   // ... and with it
constexpr uint16_t no_vector = 0xffff;

inline void out16(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
inline uint16_t in16(uint16_t port)
{
    uint16_t v;
    asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline uint32_t in32(uint16_t port)
{
    uint32_t v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

class pci_transport final : public transport {
public:
    pci_transport(const pci::device& d, uint16_t io, uint32_t type) : dev_(d), io_(io), type_(type)
    {
        snprintf(name_, sizeof name_, "virtio-pci %02x:%02x.%x", d.bus, d.slot, d.fn);
    }

    const char* name() const override { return name_; }
    uint32_t device_type() const override { return type_; }
    void reset() override { arch::outb(uint16_t(io_ + reg_status), 0); }
    uint8_t status() override { return arch::inb(uint16_t(io_ + reg_status)); }
    void set_status(uint8_t s) override { arch::outb(uint16_t(io_ + reg_status), s); }
    uint32_t host_features() override { return in32(uint16_t(io_ + reg_host_features)); }
    void set_guest_features(uint32_t f) override { arch::outl(uint16_t(io_ + reg_guest_features), f); }

    uint16_t queue_max(unsigned q) override
    {
        out16(uint16_t(io_ + reg_queue_select), uint16_t(q));
        return in16(uint16_t(io_ + reg_queue_num));
    }

    bool queue_setup(unsigned q, uint16_t size, uint64_t paddr) override
    {
        // Legacy PCI queues have the device's size; the driver cannot choose.
        if (queue_max(q) != size || (paddr & (queue_align - 1)) || (paddr >> 12) >> 32) {
            return false;
        }
        if (msix_) {
            out16(uint16_t(io_ + reg_queue_vector), 0);
            if (in16(uint16_t(io_ + reg_queue_vector)) == no_vector) {
                return false;  // the device could not take the vector
            }
        }
        arch::outl(uint16_t(io_ + reg_queue_pfn), uint32_t(paddr >> 12));
        return true;
    }

    void notify(unsigned q) override { out16(uint16_t(io_ + reg_queue_notify), uint16_t(q)); }

    uint32_t config32(unsigned off) override
    {
        return in32(uint16_t(io_ + (msix_ ? config_msix : config_plain) + off));
    }

    bool setup_interrupt(irq::handler_fn fn, void* arg) override
    {
        uint8_t v = irq::alloc_vector(fn, arg);
        if (!v || !pci::msix_route(dev_, 0, v, lapic::id())) {
            return false;
        }
        msix_ = true;  // the register layout just grew by 4 bytes
        out16(uint16_t(io_ + reg_config_vector), no_vector);
        return true;
    }

    // MSI-X is edge-triggered and needs no acknowledgement from the device.
    uint32_t ack_interrupt() override { return 1; }

private:
    pci::device dev_;
    uint16_t io_;
    uint32_t type_;
    bool msix_ = false;
    char name_[32];
};

}  // namespace

transport* probe_pci(uint32_t type, unsigned index)
{
    pci::device d;
    if (!pci::find(vendor_redhat, legacy_id_first, legacy_id_last, uint16_t(type), index, &d)) {
        return nullptr;
    }
    bool io = false;
    uint64_t base = pci::bar(d, 0, &io);
    if (!io || !base) {
        kprintf("virtio-pci %02x:%02x.%x: BAR 0 is not an I/O BAR (a modern-only device?)\n", d.bus, d.slot, d.fn);
        return nullptr;
    }
    pci::enable(d);  // NOTE: bus mastering, or the device never touches the queues
    return new pci_transport(d, uint16_t(base), type);
}

}  // namespace virtio
