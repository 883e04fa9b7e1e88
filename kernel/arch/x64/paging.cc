#include "paging.hh"

#include <atomic>

#include "core/page_alloc.hh"
#include "core/percpu.hh"
#include "cpu.hh"

extern "C" uint64_t pml4[], pdpt[], pd[];  // boot.S

namespace paging {
namespace {

constexpr uint64_t present = 1, writable = 2, large = 1u << 7;
constexpr uint64_t addr_mask = 0x000ffffffffff000ull;
constexpr uint64_t cache_bits = 0x18;  // PWT | PCD
constexpr uint64_t map_limit = 4ull << 30;

std::atomic<uint64_t> generation{1};
std::atomic<uint64_t> tables{0};

// The PD entry covering addr (4 GiB in 4 contiguous PDs).
uint64_t* pd_entry(uint64_t addr) { return &pd[addr >> 21]; }

void invlpg(uint64_t addr) { asm volatile("invlpg (%0)" : : "r"(addr) : "memory"); }

void flush_all()
{
    uint64_t cr3;
    asm volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
}

// The page table under the PD entry, splitting a 2 MiB page first.
uint64_t* table_for(uint64_t addr)
{
    uint64_t* pde = pd_entry(addr);
    uint64_t e = __atomic_load_n(pde, __ATOMIC_ACQUIRE);
    if (!(e & large)) {
        return reinterpret_cast<uint64_t*>(e & addr_mask);
    }
    // 512 x 4 KiB pages with the same attributes as the 2 MiB page.
    auto* pt = static_cast<uint64_t*>(pages::alloc(1));
    if (!pt) {
        return nullptr;
    }
    uint64_t base = e & addr_mask & ~((1ull << 21) - 1);
    uint64_t attrs = e & (writable | cache_bits);
    for (unsigned i = 0; i < 512; i++) {
        pt[i] = (base + i * 4096) | attrs | present;
    }
    uint64_t mine = reinterpret_cast<uint64_t>(pt) | present | writable;
    if (!__atomic_compare_exchange_n(pde, &e, mine, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        pages::free(pt, 1);  // another CPU split it first: use its table
        return reinterpret_cast<uint64_t*>(e & addr_mask);
    }
    tables.fetch_add(1, std::memory_order_relaxed);
    // The large-page TLB entry covers all 512 pages; flush it fully here
    // (other CPUs keep a large entry mapping the same frames: harmless).
    flush_all();
    return pt;
}

}  // namespace

bool set_guard(uint64_t addr, bool guard)
{
    if (addr >= map_limit) {
        return false;
    }
    uint64_t* pt = table_for(addr);
    if (!pt) {
        return false;
    }
    uint64_t* pte = &pt[(addr >> 12) & 511];
    if (guard) {
        __atomic_fetch_and(pte, ~present, __ATOMIC_SEQ_CST);
    } else {
        __atomic_fetch_or(pte, present, __ATOMIC_SEQ_CST);
    }
    invlpg(addr);
    if (guard) {
        generation.fetch_add(1, std::memory_order_release);
    }
    return true;
}

bool is_guard(uint64_t addr)
{
    if (addr >= map_limit) {
        return false;
    }
    uint64_t pde = __atomic_load_n(pd_entry(addr), __ATOMIC_ACQUIRE);
    if (pde & large) {
        return false;
    }
    auto* pt = reinterpret_cast<uint64_t*>(pde & addr_mask);
    return !(__atomic_load_n(&pt[(addr >> 12) & 511], __ATOMIC_RELAXED) & present);
}

uint64_t table_pages() { return tables.load(std::memory_order_relaxed); }

uint64_t tlb_generation() { return generation.load(std::memory_order_acquire); }

void sync_tlb(cpu* c)
{
    uint64_t g = generation.load(std::memory_order_acquire);
    if (c->tlb_gen != g) {
        c->tlb_gen = g;
        flush_all();
    }
}

}  // namespace paging
