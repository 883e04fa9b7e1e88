// The kernel heap: malloc/free and C++ new/delete.
//
// Small blocks (16 .. 2048 bytes, powers of two) come from per-size-class
// slabs of one page each; a page starts with a header naming its class, so
// free() finds a block's size from its address. Larger blocks get their own
// pages, with a header in front. Every block is 16-byte aligned.
//
// NOTE (SMP, no spinlock): each CPU has its own free lists, used with
// interrupts off; a shared depot behind a sleepable mutex refills them and
// takes their overflow. So malloc/free are for thread context (they may
// block on a miss), never for interrupt handlers or the scheduler.
//
// Tracing: malloc emits memory_malloc (buf, len, align) once the block is
// taken, free emits memory_free (buf) before the block can be reused, so a
// trace never shows an address handed out twice without a free between
// (`osvtrace report memory` matches them by address).
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
