#include "drivers/virtio/virtio_mmio.hh"

#include "core/console.hh"
#include "ioapic.hh"
#include "lapic.hh"
#include "lib/printf.hh"

namespace virtio {
namespace {

constexpr uint64_t slots_base = 0xfeb00000;  // identity-mapped, uncached
constexpr uint64_t slot_size = 512;
constexpr uint32_t magic_value = 0x74726976;  // "virt"
// microvm wires slot i to GSI base + i: 5 + i for 8 slots with one I/O
// APIC, 24 + i for 24 slots when the second I/O APIC (ioapic2) exists.
constexpr uint64_t ioapic2_base = 0xfec10000;

// Version-1 registers (virtio 1.x, 4.2.4).
enum : uint32_t {
    reg_magic = 0x000,
    reg_version = 0x004,
    reg_device_id = 0x008,
    reg_host_features = 0x010,
    reg_host_features_sel = 0x014,
    reg_guest_features = 0x020,
    reg_guest_features_sel = 0x024,
    reg_guest_page_size = 0x028,
    reg_queue_sel = 0x030,
    reg_queue_num_max = 0x034,
    reg_queue_num = 0x038,
    reg_queue_align = 0x03c,
    reg_queue_pfn = 0x040,
    reg_queue_notify = 0x050,
    reg_interrupt_status = 0x060,
    reg_interrupt_ack = 0x064,
    reg_status = 0x070,
    reg_config = 0x100,
};

inline uint32_t rd(uint64_t base, uint32_t off) { return *reinterpret_cast<volatile uint32_t*>(base + off); }
inline void wr(uint64_t base, uint32_t off, uint32_t v) { *reinterpret_cast<volatile uint32_t*>(base + off) = v; }

class mmio_transport final : public transport {
public:
    mmio_transport(uint64_t base, uint32_t gsi, uint32_t type) : base_(base), gsi_(gsi), type_(type)
    {
        snprintf(name_, sizeof name_, "virtio-mmio %#lx", base);
    }

    const char* name() const override { return name_; }
    uint32_t device_type() const override { return type_; }
    void reset() override { wr(base_, reg_status, 0); }
    uint8_t status() override { return uint8_t(rd(base_, reg_status)); }
    void set_status(uint8_t s) override
    {
        if (s == status_acknowledge) {
            wr(base_, reg_guest_page_size, uint32_t(queue_align));  // before any queue PFN
        }
        wr(base_, reg_status, s);
    }
    uint32_t host_features() override
    {
        wr(base_, reg_host_features_sel, 0);
        return rd(base_, reg_host_features);
    }
    void set_guest_features(uint32_t f) override
    {
        wr(base_, reg_guest_features_sel, 0);
        wr(base_, reg_guest_features, f);
    }

    uint16_t queue_max(unsigned q) override
    {
        wr(base_, reg_queue_sel, q);
        uint32_t n = rd(base_, reg_queue_num_max);
        return uint16_t(n > 0xffff ? 0 : n);
    }

    bool queue_setup(unsigned q, uint16_t size, uint64_t paddr) override
    {
        if (!size || queue_max(q) < size || (paddr & (queue_align - 1)) || (paddr >> 12) >> 32) {
            return false;
        }
        wr(base_, reg_queue_num, size);
        wr(base_, reg_queue_align, uint32_t(queue_align));
        wr(base_, reg_queue_pfn, uint32_t(paddr >> 12));
        return true;
    }

    void notify(unsigned q) override { wr(base_, reg_queue_notify, q); }
    uint32_t config32(unsigned off) override { return rd(base_, reg_config + off); }

    bool setup_interrupt(irq::handler_fn fn, void* arg) override
    {
        uint8_t v = irq::alloc_vector(fn, arg);
        return v && ioapic::route(gsi_, v, lapic::id());
    }

    uint32_t ack_interrupt() override
    {
        uint32_t s = rd(base_, reg_interrupt_status);
        wr(base_, reg_interrupt_ack, s);  // lowers the (level-triggered) line
        return s;
    }

private:
    uint64_t base_;
    uint32_t gsi_;
    uint32_t type_;
    char name_[32];
};

}  // namespace

transport* probe_mmio(uint32_t type, unsigned index)
{
    bool two = ioapic::present(ioapic2_base);
    unsigned nslots = two ? 24 : 8;
    uint32_t gsi_base = two ? 24 : 5;
    for (unsigned i = 0; i < nslots; i++) {
        uint64_t base = slots_base + i * slot_size;
        if (rd(base, reg_magic) != magic_value) {
            continue;
        }
        if (rd(base, reg_version) != 1) {
            kprintf("virtio-mmio %#lx: version %u, this driver speaks version 1 (legacy)\n", base,
                    rd(base, reg_version));
            continue;
        }
        if (rd(base, reg_device_id) == type && index-- == 0) {
            return new mmio_transport(base, gsi_base + i, type);
        }
    }
    return nullptr;
}

}  // namespace virtio
