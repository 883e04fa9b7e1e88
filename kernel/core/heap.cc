#include "core/heap.hh"

#include <atomic>
#include <stdint.h>

#include "core/mutex.hh"
#include "core/page_alloc.hh"
#include "core/panic.hh"
#include "core/percpu.hh"
#include "cpu.hh"
#include "generated/tracepoints.hh"
#include "lib/string.hh"

namespace {

constexpr uint32_t magic_slab = 0x51ab51ab;
constexpr uint32_t magic_large = 0x1a26e000;
constexpr unsigned min_shift = 4, max_shift = 11;  // 16 .. 2048 bytes
constexpr unsigned nclasses = max_shift - min_shift + 1;
constexpr size_t header = 16;  // keeps every block 16-byte aligned
constexpr uint32_t block_align = 16;  // what memory_malloc records as the block's alignment

// memory_malloc's len is 32 bits (one trace slot); no request that large can succeed here.
uint32_t traced_len(size_t n) { return n > UINT32_MAX ? UINT32_MAX : uint32_t(n); }
// A CPU keeps at most this many bytes of one class; beyond, half goes back
// to the shared depot (so a producer/consumer pair does not strand memory).
constexpr size_t cache_limit_bytes = 16 * 1024;

struct page_header {
    uint32_t magic;
    uint32_t shift;   // slab: block size class
    uint64_t npages;  // large: pages in the allocation
};
static_assert(sizeof(page_header) == header, "heap page header");

struct free_block {
    free_block* next;
};

// A chain of free blocks with its length.
struct chain {
    free_block* head = nullptr;
    size_t n = 0;
};

// NOTE: caches[cpu] belongs to that CPU and is used with interrupts off (per-
// CPU data: no lock). The depot is shared and behind a sleepable mutex; it
// is only touched on a cache miss or overflow, and never with interrupts off
// (malloc/free are for thread context).
struct alignas(64) cpu_cache {
    chain lists[nclasses];
};
cpu_cache caches[max_cpus];

mutex depot_lock;
chain depot[nclasses];
std::atomic<size_t> in_use{0};

unsigned class_shift(size_t n)
{
    unsigned s = min_shift;
    while ((size_t(1) << s) < n) {
        s++;
    }
    return s;
}

size_t limit_blocks(unsigned shift) { return cache_limit_bytes >> shift; }

// A chain of free blocks for one class: half a cache's worth from the depot,
// or a fresh page carved up. Empty on out-of-memory.
chain refill(unsigned shift)
{
    chain c;
    const unsigned k = shift - min_shift;
    {
        lock_guard g(depot_lock);
        size_t want = limit_blocks(shift) / 2;
        while (depot[k].head && c.n < want) {
            free_block* b = depot[k].head;
            depot[k].head = b->next;
            depot[k].n--;
            b->next = c.head;
            c.head = b;
            c.n++;
        }
    }
    if (c.head) {
        return c;
    }
    auto* page = static_cast<char*>(pages::alloc(1));
    if (!page) {
        return c;
    }
    auto* h = reinterpret_cast<page_header*>(page);
    h->magic = magic_slab;
    h->shift = shift;
    h->npages = 1;
    const size_t size = size_t(1) << shift;
    for (size_t off = header; off + size <= pages::page_size; off += size) {
        auto* b = reinterpret_cast<free_block*>(page + off);
        b->next = c.head;
        c.head = b;
        c.n++;
    }
    return c;
}

void give_to_depot(unsigned shift, chain c)
{
    if (!c.head) {
        return;
    }
    free_block* last = c.head;
    while (last->next) {
        last = last->next;
    }
    lock_guard g(depot_lock);
    const unsigned k = shift - min_shift;
    last->next = depot[k].head;
    depot[k].head = c.head;
    depot[k].n += c.n;
}

void* malloc_small(unsigned shift)
{
    const unsigned k = shift - min_shift;
    for (;;) {
        {
            irq_guard g;
            chain& l = caches[this_cpu()->id].lists[k];
            if (free_block* b = l.head) {
                l.head = b->next;
                l.n--;
                return b;
            }
        }
        // Interrupts on again: the refill may block on the depot or page lock.
        chain c = refill(shift);
        if (!c.head) {
            return nullptr;
        }
        free_block* last = c.head;
        while (last->next) {
            last = last->next;
        }
        irq_guard g;  // possibly another CPU's cache by now: any will do
        chain& l = caches[this_cpu()->id].lists[k];
        last->next = l.head;
        l.head = c.head;
        l.n += c.n;
    }
}

void free_small(free_block* b, unsigned shift)
{
    const unsigned k = shift - min_shift;
    chain spill;
    {
        irq_guard g;
        chain& l = caches[this_cpu()->id].lists[k];
        b->next = l.head;
        l.head = b;
        l.n++;
        if (l.n > limit_blocks(shift)) {
            // Cut the list in half: the first half stays, the rest spills.
            size_t keep = l.n / 2;
            free_block* cut = l.head;
            for (size_t i = 1; i < keep; i++) {
                cut = cut->next;
            }
            spill.head = cut->next;
            spill.n = l.n - keep;
            cut->next = nullptr;
            l.n = keep;
        }
    }
    give_to_depot(shift, spill);
}

}  // namespace

extern "C" void* malloc(size_t n)
{
    if (n <= (size_t(1) << max_shift)) {
        unsigned shift = class_shift(n ? n : 1);
        void* p = malloc_small(shift);
        if (p) {
            in_use.fetch_add(size_t(1) << shift, std::memory_order_relaxed);
        }
        // Traced after the block is ours (a failure records buf 0, as OSv does): a
        // disabled tracepoint is a compare and a predicted jump.
        trace_memory_malloc(p, traced_len(n), block_align);
        return p;
    }
    size_t np = pages::pages_for(n + header);
    auto* page = static_cast<char*>(pages::alloc(np));
    if (!page) {
        trace_memory_malloc(nullptr, traced_len(n), block_align);
        return nullptr;
    }
    auto* h = reinterpret_cast<page_header*>(page);
    h->magic = magic_large;
    h->shift = 0;
    h->npages = np;
    in_use.fetch_add(np * pages::page_size, std::memory_order_relaxed);
    trace_memory_malloc(page + header, traced_len(n), block_align);
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
    // Before the block can be reused by another thread's malloc: the trace never shows
    // an address allocated twice without a free between.
    trace_memory_free(p);
    auto* h = reinterpret_cast<page_header*>(reinterpret_cast<uintptr_t>(p) & ~(pages::page_size - 1));
    if (h->magic == magic_slab) {
        in_use.fetch_sub(size_t(1) << h->shift, std::memory_order_relaxed);
        free_small(static_cast<free_block*>(p), h->shift);
    } else if (h->magic == magic_large && reinterpret_cast<char*>(p) == reinterpret_cast<char*>(h) + header) {
        size_t np = h->npages;
        h->magic = 0;
        in_use.fetch_sub(np * pages::page_size, std::memory_order_relaxed);
        pages::free(h, np);
    } else {
        panic("heap: free of %p, not a heap block", p);
    }
}

namespace heap {
size_t bytes_in_use() { return in_use.load(std::memory_order_relaxed); }
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
