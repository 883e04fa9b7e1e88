#include "acpi.hh"

#include "cpu.hh"
#include "lib/string.hh"
#include "pvh.hh"

namespace acpi {
namespace {

struct __attribute__((packed)) rsdp {
    char signature[8];  // "RSD PTR "
    uint8_t checksum;
    char oem[6];
    uint8_t revision;  // 0: ACPI 1.0 (RSDT only); 2+: XSDT too
    uint32_t rsdt;
    uint32_t length;
    uint64_t xsdt;
    uint8_t ext_checksum;
    uint8_t reserved[3];
};
static_assert(sizeof(rsdp) == 36, "RSDP size");

struct __attribute__((packed)) sdt_header {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem[6];
    char oem_table[8];
    uint32_t oem_revision;
    uint32_t creator;
    uint32_t creator_revision;
};
static_assert(sizeof(sdt_header) == 36, "SDT header size");

struct __attribute__((packed)) madt {
    sdt_header h;
    uint32_t lapic_addr;
    uint32_t flags;
    // entries follow: type, length, body
};
static_assert(sizeof(madt) == 44, "MADT header size");

struct __attribute__((packed)) madt_lapic {  // entry type 0
    uint8_t type, length;
    uint8_t processor_id;
    uint8_t apic_id;
    uint32_t flags;  // bit 0 enabled, bit 1 online capable
};
static_assert(sizeof(madt_lapic) == 8, "MADT local APIC entry size");

constexpr uint64_t mem_limit = 4ull << 30;  // the identity map's reach

bool sum_ok(const void* p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++) {
        s += static_cast<const uint8_t*>(p)[i];
    }
    return s == 0;
}

const rsdp* check_rsdp(uint64_t addr)
{
    if (!addr || addr >= mem_limit || addr < 4096) {
        return nullptr;  // page 0 is unmapped; nothing valid lives there anyway
    }
    auto* r = reinterpret_cast<const rsdp*>(addr);
    return memcmp(r->signature, "RSD PTR ", 8) == 0 && sum_ok(r, 20) ? r : nullptr;
}

// The BIOS read-only area, 16-byte aligned (ACPI spec 5.2.5.1).
const rsdp* scan_bios()
{
    for (uint64_t a = 0xe0000; a < 0x100000; a += 16) {
        if (const rsdp* r = check_rsdp(a)) {
            return r;
        }
    }
    return nullptr;
}

const sdt_header* table(uint64_t addr, const char* sig)
{
    if (!addr || addr >= mem_limit) {
        return nullptr;
    }
    auto* h = reinterpret_cast<const sdt_header*>(addr);
    if (memcmp(h->signature, sig, 4) != 0 || h->length < sizeof(sdt_header) || !sum_ok(h, h->length)) {
        return nullptr;
    }
    return h;
}

const madt* find_madt(const rsdp* r)
{
    const sdt_header* root = nullptr;
    unsigned width = 4;
    if (r->revision >= 2 && r->xsdt) {
        root = table(r->xsdt, "XSDT");
        width = 8;
    }
    if (!root) {
        root = table(r->rsdt, "RSDT");
        width = 4;
    }
    if (!root) {
        return nullptr;
    }
    const uint8_t* p = reinterpret_cast<const uint8_t*>(root) + sizeof(sdt_header);
    unsigned entries = (root->length - sizeof(sdt_header)) / width;
    for (unsigned i = 0; i < entries; i++) {
        uint64_t a = 0;
        memcpy(&a, p + i * width, width);
        if (const sdt_header* h = table(a, "APIC")) {
            return reinterpret_cast<const madt*>(h);
        }
    }
    return nullptr;
}

void from_madt(const madt* m, cpu_list* out)
{
    const uint8_t* p = reinterpret_cast<const uint8_t*>(m) + sizeof(madt);
    const uint8_t* end = reinterpret_cast<const uint8_t*>(m) + m->h.length;
    while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
        if (p[0] == 0 && p[1] >= sizeof(madt_lapic)) {
            auto* e = reinterpret_cast<const madt_lapic*>(p);
            if ((e->flags & 1) && out->n < cpu_list::max) {
                out->apic_id[out->n++] = e->apic_id;
            }
        }
        p += p[1];
    }
}

// QEMU's fw_cfg: selector port 0x510, data port 0x511 (pc, q35 and microvm).
unsigned fw_cfg_cpus()
{
    constexpr uint16_t sel = 0x510, data = 0x511;
    constexpr uint16_t key_signature = 0x00, key_nb_cpus = 0x05;
    arch::outw(sel, key_signature);
    char sig[4];
    for (char& ch : sig) {
        ch = char(arch::inb(data));
    }
    if (memcmp(sig, "QEMU", 4) != 0) {
        return 0;
    }
    arch::outw(sel, key_nb_cpus);
    unsigned lo = arch::inb(data);
    unsigned hi = arch::inb(data);
    return lo | (hi << 8);
}

}  // namespace

void find_cpus(const pvh::start_info* si, cpu_list* out)
{
    out->n = 0;
    const rsdp* r = check_rsdp(si->rsdp_paddr);
    if (!r) {
        r = scan_bios();
    }
    if (r) {
        if (const madt* m = find_madt(r)) {
            from_madt(m, out);
            if (out->n) {
                out->source = "madt";
                return;
            }
        }
    }
    unsigned n = fw_cfg_cpus();
    if (n) {
        for (unsigned i = 0; i < n && i < cpu_list::max; i++) {
            out->apic_id[out->n++] = i;
        }
        out->source = "fw_cfg";
    }
}

}  // namespace acpi
