#include "paging.hh"

#include "core/page_alloc.hh"
#include "cpu.hh"
#include "lib/string.hh"

extern "C" uint64_t pml4[], pdpt[], pd[];  // boot.S

namespace paging {
namespace {

constexpr uint64_t present = 1, writable = 2, large = 1u << 7;
constexpr uint64_t addr_mask = 0x000ffffffffff000ull;
constexpr uint64_t cache_bits = 0x18;  // PWT | PCD
constexpr uint64_t map_limit = 4ull << 30;

// The PD entry covering addr (4 GiB in 4 contiguous PDs).
uint64_t* pd_entry(uint64_t addr) { return &pd[addr >> 21]; }

void invlpg(uint64_t addr) { asm volatile("invlpg (%0)" : : "r"(addr) : "memory"); }

}  // namespace

bool set_guard(uint64_t addr, bool guard)
{
    if (addr >= map_limit) {
        return false;
    }
    irq_guard g;
    uint64_t* pde = pd_entry(addr);
    if (*pde & large) {
        // Split: 512 x 4 KiB pages with the same attributes as the 2 MiB page.
        auto* pt = static_cast<uint64_t*>(pages::alloc(1));
        if (!pt) {
            return false;
        }
        uint64_t base = *pde & addr_mask & ~((1ull << 21) - 1);
        uint64_t attrs = *pde & (writable | cache_bits);
        for (unsigned i = 0; i < 512; i++) {
            pt[i] = (base + i * 4096) | attrs | present;
        }
        *pde = reinterpret_cast<uint64_t>(pt) | present | writable;
        // The large-page TLB entry covers all 512 pages; flush it fully.
        uint64_t cr3;
        asm volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
    }
    auto* pt = reinterpret_cast<uint64_t*>(*pde & addr_mask);
    uint64_t& pte = pt[(addr >> 12) & 511];
    if (guard) {
        pte &= ~present;
    } else {
        pte |= present;
    }
    invlpg(addr);
    return true;
}

bool is_guard(uint64_t addr)
{
    if (addr >= map_limit) {
        return false;
    }
    uint64_t pde = *pd_entry(addr);
    if (pde & large) {
        return false;
    }
    auto* pt = reinterpret_cast<uint64_t*>(pde & addr_mask);
    return !(pt[(addr >> 12) & 511] & present);
}

}  // namespace paging
