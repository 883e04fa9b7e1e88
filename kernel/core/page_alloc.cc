#include "core/page_alloc.hh"

#include "core/console.hh"
#include "core/mutex.hh"
#include "core/panic.hh"
#include "cpu.hh"
#include "pvh.hh"

extern "C" char _kernel_end[];

namespace pages {
namespace {

struct free_range {
    size_t npages;
    free_range* next;
};

// NOTE: ranges and nfree are protected by `lock` (a sleepable mutex: pages
// are only allocated and freed in thread context, never by interrupt
// handlers or the scheduler).
mutex lock;
free_range* ranges;  // address-ordered
size_t total, nfree;

constexpr uint64_t identity_map_limit = 4ull << 30;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

void insert(uint64_t addr, size_t npages)
{
    auto* r = reinterpret_cast<free_range*>(addr);
    free_range** link = &ranges;
    while (*link && reinterpret_cast<uint64_t>(*link) < addr) {
        link = &(*link)->next;
    }
    free_range* next = *link;
    if (next && addr + npages * page_size > reinterpret_cast<uint64_t>(next)) {
        panic("pages: double free or overlap at %lx", addr);
    }
    r->npages = npages;
    r->next = next;
    *link = r;
    // Merge with the following range, then with the preceding one.
    if (next && addr + npages * page_size == reinterpret_cast<uint64_t>(next)) {
        r->npages += next->npages;
        r->next = next->next;
    }
    if (link != &ranges) {
        auto* prev = reinterpret_cast<free_range*>(reinterpret_cast<char*>(link) - offsetof(free_range, next));
        if (reinterpret_cast<uint64_t>(prev) + prev->npages * page_size == addr) {
            prev->npages += r->npages;
            prev->next = r->next;
        }
    }
    nfree += npages;
}

}  // namespace

void init(const pvh::start_info* si)
{
    if (si->version < 1 || si->memmap_entries == 0) {
        panic("pages: no memory map in hvm_start_info (version %u)", si->version);
    }
    const uint64_t floor = align_up(reinterpret_cast<uint64_t>(_kernel_end), page_size);
    auto* map = reinterpret_cast<const pvh::memmap_entry*>(si->memmap_paddr);
    for (uint32_t i = 0; i < si->memmap_entries; i++) {
        if (map[i].type != pvh::memmap_ram) {
            continue;
        }
        uint64_t start = align_up(map[i].addr, page_size);
        uint64_t end = (map[i].addr + map[i].size) & ~(page_size - 1);
        // Memory below the kernel image end holds the image itself and the
        // boot data QEMU placed low (start_info, command line, memory map).
        if (start < floor) {
            start = floor;
        }
        if (end > identity_map_limit) {
            end = identity_map_limit;
        }
        if (end > start) {
            size_t n = (end - start) / page_size;
            insert(start, n);
            total += n;
        }
    }
    if (!total) {
        panic("pages: no usable RAM above the kernel image");
    }
}

void* alloc(size_t npages, size_t align_pages)
{
    if (npages == 0) {
        return nullptr;
    }
    lock_guard g(lock);
    const uint64_t align = align_pages * page_size;
    for (free_range** link = &ranges; *link; link = &(*link)->next) {
        free_range* r = *link;
        uint64_t start = reinterpret_cast<uint64_t>(r);
        uint64_t end = start + r->npages * page_size;
        uint64_t a = align_up(start, align);
        if (a + npages * page_size > end) {
            continue;
        }
        // Unlink r, then give back the parts before and after the allocation.
        *link = r->next;
        nfree -= r->npages;
        if (a > start) {
            insert(start, (a - start) / page_size);
        }
        uint64_t tail = a + npages * page_size;
        if (tail < end) {
            insert(tail, (end - tail) / page_size);
        }
        return reinterpret_cast<void*>(a);
    }
    return nullptr;
}

void free(void* p, size_t npages)
{
    if (!p || !npages) {
        return;
    }
    lock_guard g(lock);
    insert(reinterpret_cast<uint64_t>(p), npages);
}

size_t total_pages() { return total; }
size_t free_pages() { return __atomic_load_n(&nfree, __ATOMIC_RELAXED); }

}  // namespace pages
