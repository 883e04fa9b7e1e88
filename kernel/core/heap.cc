#include "core/heap.hh"

#include <stdint.h>

#include "core/page_alloc.hh"
#include "core/panic.hh"
#include "cpu.hh"
#include "lib/string.hh"

namespace {

constexpr uint32_t magic_slab = 0x51ab51ab;
constexpr uint32_t magic_large = 0x1a26e000;
constexpr unsigned min_shift = 4, max_shift = 11;  // 16 .. 2048 bytes
constexpr unsigned nclasses = max_shift - min_shift + 1;
constexpr size_t header = 16;  // keeps every block 16-byte aligned

struct page_header {
    uint32_t magic;
    uint32_t shift;   // slab: block size class
    uint64_t npages;  // large: pages in the allocation
};
static_assert(sizeof(page_header) == header, "heap page header");

struct free_block {
    free_block* next;
};

free_block* free_lists[nclasses];
size_t in_use;

unsigned class_shift(size_t n)
{
    unsigned s = min_shift;
    while ((size_t(1) << s) < n) {
        s++;
    }
    return s;
}

bool refill(unsigned shift)
{
    auto* page = static_cast<char*>(pages::alloc(1));
    if (!page) {
        return false;
    }
    auto* h = reinterpret_cast<page_header*>(page);
    h->magic = magic_slab;
    h->shift = shift;
    h->npages = 1;
    const size_t size = size_t(1) << shift;
    free_block*& list = free_lists[shift - min_shift];
    for (size_t off = header; off + size <= pages::page_size; off += size) {
        auto* b = reinterpret_cast<free_block*>(page + off);
        b->next = list;
        list = b;
    }
    return true;
}

}  // namespace

extern "C" void* malloc(size_t n)
{
    if (n <= (size_t(1) << max_shift)) {
        unsigned shift = class_shift(n ? n : 1);
        irq_guard g;
        free_block*& list = free_lists[shift - min_shift];
        if (!list && !refill(shift)) {
            return nullptr;
        }
        free_block* b = list;
        list = b->next;
        in_use += size_t(1) << shift;
        return b;
    }
    size_t np = pages::pages_for(n + header);
    auto* page = static_cast<char*>(pages::alloc(np));
    if (!page) {
        return nullptr;
    }
    auto* h = reinterpret_cast<page_header*>(page);
    h->magic = magic_large;
    h->shift = 0;
    h->npages = np;
    {
        irq_guard g;
        in_use += np * pages::page_size;
    }
    return page + header;
}

extern "C" void* calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        return nullptr;
    }
    void* p = malloc(total);
    if (p) {
        memset(p, 0, total);
    }
    return p;
}

extern "C" void free(void* p)
{
    if (!p) {
        return;
    }
    auto* h = reinterpret_cast<page_header*>(reinterpret_cast<uintptr_t>(p) & ~(pages::page_size - 1));
    if (h->magic == magic_slab) {
        irq_guard g;
        auto* b = static_cast<free_block*>(p);
        b->next = free_lists[h->shift - min_shift];
        free_lists[h->shift - min_shift] = b;
        in_use -= size_t(1) << h->shift;
    } else if (h->magic == magic_large && reinterpret_cast<char*>(p) == reinterpret_cast<char*>(h) + header) {
        size_t np = h->npages;
        h->magic = 0;
        {
            irq_guard g;
            in_use -= np * pages::page_size;
        }
        pages::free(h, np);
    } else {
        panic("heap: free of %p, not a heap block", p);
    }
}

namespace heap {
size_t bytes_in_use() { return in_use; }
}  // namespace heap

void* operator new(size_t n)
{
    void* p = malloc(n);
    if (!p) {
        panic("heap: out of memory (new of %zu bytes)", n);
    }
    return p;
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { free(p); }
void operator delete[](void* p) noexcept { free(p); }
void operator delete(void* p, size_t) noexcept { free(p); }
void operator delete[](void* p, size_t) noexcept { free(p); }
