#include "ioapic.hh"

namespace ioapic {
namespace {

constexpr uint64_t bases[] = {0xfec00000, 0xfec10000};  // identity-mapped uncached MMIO
constexpr uint32_t reg_version = 0x01;
constexpr uint32_t reg_redir = 0x10;  // 2 registers per GSI
constexpr uint32_t redir_level = 1u << 15;

// Index register at +0x00, data window at +0x10.
uint32_t read(uint64_t base, uint32_t reg)
{
    *reinterpret_cast<volatile uint32_t*>(base) = reg;
    return *reinterpret_cast<volatile uint32_t*>(base + 0x10);
}

void write(uint64_t base, uint32_t reg, uint32_t v)
{
    *reinterpret_cast<volatile uint32_t*>(base) = reg;
    *reinterpret_cast<volatile uint32_t*>(base + 0x10) = v;
}

// Pins of the I/O APIC at base (0 if none answers there). An absent one
// reads as 0 (unassigned memory under QEMU) or all ones.
unsigned pins(uint64_t base)
{
    uint32_t v = read(base, reg_version);
    if (v == 0 || v == 0xffffffffu) {
        return 0;
    }
    return ((v >> 16) & 0xff) + 1;
}

}  // namespace

bool present(uint64_t base) { return pins(base) != 0; }

bool route(uint32_t gsi, uint8_t vector, uint32_t apic_id)
{
    uint32_t first = 0;
    for (uint64_t base : bases) {
        unsigned n = pins(base);
        if (!n) {
            return false;
        }
        if (gsi < first + n) {
            uint32_t pin = gsi - first;
            // High word first: the entry is unmasked by the low word's write.
            write(base, reg_redir + 2 * pin + 1, apic_id << 24);
            write(base, reg_redir + 2 * pin, vector | redir_level);
            return true;
        }
        first += n;
    }
    return false;
}

}  // namespace ioapic
