// Physical page allocator over the RAM ranges of the PVH memory map.
// Virtual == physical, so a page's address is directly usable.
//
// Free memory is a list of ranges, address-ordered, whose headers live in
// the free pages themselves; allocation is first fit and frees coalesce. It
// serves few, mostly large requests (stacks, trace rings, heap pages), where
// this is simple and fragments little.
// NOTE: protected by a kernel mutex (lock-free, sleepable): thread context
// only. Requests are few and large, so one lock is no bottleneck; the heap
// keeps per-CPU caches in front of it for small blocks.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace pvh {
struct start_info;
}

namespace pages {

constexpr size_t page_size = 4096;

// Adds all RAM from the memory map that lies above the kernel image and below
// 4 GiB (the identity map's reach).
void init(const pvh::start_info* si);

// npages contiguous pages, aligned to align_pages pages (a power of two).
// Returns nullptr when no range fits. The memory is not zeroed.
void* alloc(size_t npages, size_t align_pages = 1);
void free(void* p, size_t npages);

size_t total_pages();
size_t free_pages();

inline size_t pages_for(size_t bytes) { return (bytes + page_size - 1) / page_size; }

}  // namespace pages
