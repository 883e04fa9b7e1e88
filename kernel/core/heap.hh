// The kernel heap: malloc/free and C++ new/delete.
//
// Small blocks (16 .. 2048 bytes, powers of two) come from per-size-class
// slabs of one page each; a page starts with a header naming its class, so
// free() finds a block's size from its address. Larger blocks get their own
// pages, with a header in front. Every block is 16-byte aligned.
// FIXME(SMP): one set of free lists, protected by masking interrupts; per-CPU
// caches are the plan when more CPUs allocate.
#pragma once

#include <stddef.h>

extern "C" {
void* malloc(size_t n);
void* calloc(size_t n, size_t size);
void free(void* p);
}

namespace heap {
size_t bytes_in_use();
}
