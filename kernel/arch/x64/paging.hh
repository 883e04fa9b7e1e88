// The identity map built by boot.S (first 4 GiB, 2 MiB pages; the first 2 MiB
// in 4 KiB pages), plus what the kernel changes in it at run time: page 0
// made absent after boot (null pointers fault), guard pages below thread
// stacks. A 2 MiB mapping is split into 4 KiB pages the first time one of its
// pages changes.
//
// NOTE (SMP, no locks): a split installs its page table with a CAS on the PD
// entry (the loser frees its table and uses the winner's); a page's present
// bit changes with an atomic and/or on its own entry. Other CPUs' TLBs are
// flushed lazily, without IPIs: every change bumps a generation, and a CPU
// reloads CR3 before switching to a thread when it last flushed for an older
// one. That is enough for guard pages: a new guard only protects a stack that
// has not run yet (or is being freed), so any CPU that could touch the page
// through it switches to its thread first. Making a page present again needs
// no flush (x86 caches no not-present translations).
#pragma once

#include <stdint.h>

struct cpu;

namespace paging {

// Makes the 4 KiB page at addr absent (guard) or present again. Returns
// false if no page table could be allocated for the split. Thread context
// (it may allocate).
bool set_guard(uint64_t addr, bool guard);

// True if addr lies in a page made absent by set_guard (or page 0).
bool is_guard(uint64_t addr);

uint64_t tlb_generation();

// Page tables allocated for 2 MiB splits since boot (kept for good).
uint64_t table_pages();

// Flushes this CPU's TLB if the page tables changed since it last did
// (scheduler, at each switch, interrupts off).
void sync_tlb(cpu* c);

}  // namespace paging
