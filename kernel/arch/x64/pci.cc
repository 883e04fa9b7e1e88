#include "pci.hh"

#include "cpu.hh"

namespace pci {
namespace {

constexpr uint16_t config_address = 0xcf8;
constexpr uint16_t config_data = 0xcfc;
constexpr uint8_t reg_command = 0x04;
constexpr uint8_t reg_status = 0x06;
constexpr uint8_t reg_header_type = 0x0e;
constexpr uint8_t reg_bar0 = 0x10;
constexpr uint8_t reg_subsystem_id = 0x2e;
constexpr uint8_t reg_cap_ptr = 0x34;
constexpr uint16_t status_cap_list = 1u << 4;
constexpr uint16_t cmd_io = 1u << 0, cmd_memory = 1u << 1, cmd_bus_master = 1u << 2;
constexpr uint8_t cap_msix = 0x11;
constexpr uint16_t msix_enable = 1u << 15;
constexpr uint16_t msix_function_mask = 1u << 14;

inline void inl_select(const device& d, uint8_t off)
{
    arch::outl(config_address, (1u << 31) | (uint32_t(d.bus) << 16) | (uint32_t(d.slot) << 11) |
                                   (uint32_t(d.fn) << 8) | (off & 0xfc));
}

inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

// The offset of capability `id` in d's list, or 0.
uint8_t find_cap(const device& d, uint8_t id)
{
    if (!(read16(d, reg_status) & status_cap_list)) {
        return 0;
    }
    uint8_t off = uint8_t(read32(d, reg_cap_ptr) & 0xfc);
    for (unsigned guard = 0; off && guard < 48; guard++) {
        uint32_t head = read32(d, off);
        if ((head & 0xff) == id) {
            return off;
        }
        off = uint8_t((head >> 8) & 0xfc);
    }
    return 0;
}

}  // namespace

// NOTE: config cycles are two port accesses: an interrupt handler between
// them that also used config space would break them. None does (handlers
// never touch config space), and drivers probe from one thread at a time.
uint32_t read32(const device& d, uint8_t off)
{
    inl_select(d, off);
    return inl(config_data);
}

uint16_t read16(const device& d, uint8_t off) { return uint16_t(read32(d, off) >> ((off & 2) * 8)); }

void write32(const device& d, uint8_t off, uint32_t v)
{
    inl_select(d, off);
    arch::outl(config_data, v);
}

void write16(const device& d, uint8_t off, uint16_t v)
{
    uint32_t cur = read32(d, off);
    unsigned shift = (off & 2) * 8;
    cur = (cur & ~(0xffffu << shift)) | (uint32_t(v) << shift);
    write32(d, off, cur);
}

bool find(uint16_t vendor, uint16_t id_lo, uint16_t id_hi, uint16_t subsystem, unsigned index, device* out)
{
    for (uint8_t slot = 0; slot < 32; slot++) {
        for (uint8_t fn = 0; fn < 8; fn++) {
            device d{0, slot, fn, 0, 0};
            uint32_t vd = read32(d, 0);
            if ((vd & 0xffff) == 0xffff) {
                if (fn == 0) {
                    break;  // no device in this slot
                }
                continue;
            }
            uint16_t id = uint16_t(vd >> 16);
            if ((vd & 0xffff) == vendor && id >= id_lo && id <= id_hi &&
                (subsystem == 0xffff || read16(d, reg_subsystem_id) == subsystem) && index-- == 0) {
                d.vendor = vendor;
                d.id = id;
                *out = d;
                return true;
            }
            if (fn == 0 && !(read16(d, reg_header_type) & 0x80)) {
                break;  // single-function device
            }
        }
    }
    return false;
}

uint64_t bar(const device& d, unsigned n, bool* is_io)
{
    uint8_t off = uint8_t(reg_bar0 + 4 * n);
    uint32_t lo = read32(d, off);
    if (lo & 1) {
        *is_io = true;
        return lo & ~3u;
    }
    *is_io = false;
    uint64_t addr = lo & ~0xfu;
    if (((lo >> 1) & 3) == 2) {  // 64-bit BAR: the next one holds the high half
        addr |= uint64_t(read32(d, uint8_t(off + 4))) << 32;
    }
    return addr;
}

void enable(const device& d)
{
    write16(d, reg_command, read16(d, reg_command) | cmd_io | cmd_memory | cmd_bus_master);
}

bool msix_route(const device& d, unsigned entry, uint8_t vector, uint32_t apic_id)
{
    uint8_t cap = find_cap(d, cap_msix);
    if (!cap) {
        return false;
    }
    uint16_t control = read16(d, uint8_t(cap + 2));
    if (entry > (control & 0x7ffu)) {
        return false;
    }
    uint32_t table = read32(d, uint8_t(cap + 4));
    bool io;
    uint64_t base = bar(d, table & 7, &io);
    if (io || !base || base >= (4ull << 30)) {
        return false;  // not reachable through the identity map
    }
    auto* e = reinterpret_cast<volatile uint32_t*>(base + (table & ~7u) + 16 * entry);
    e[0] = 0xfee00000u | (apic_id << 12);  // message address: the LAPIC, physical destination
    e[1] = 0;
    e[2] = vector;                          // fixed delivery, edge
    e[3] = 0;                               // unmasked
    write16(d, uint8_t(cap + 2), uint16_t((control | msix_enable) & ~msix_function_mask));
    return true;
}

}  // namespace pci
