// The identity map built by boot.S (first 4 GiB, 2 MiB pages; the first 2 MiB
// in 4 KiB pages), plus what the kernel changes in it at run time: page 0
// made absent after boot (null pointers fault), guard pages below thread
// stacks. A 2 MiB mapping is split into
// 4 KiB pages the first time one of its pages changes.
// FIXME(SMP): changes flush only this CPU's TLB; other CPUs need a shootdown IPI.
#pragma once

#include <stdint.h>

namespace paging {

// Makes the 4 KiB page at addr absent (guard) or present again. Returns
// false if no page table could be allocated for the split.
bool set_guard(uint64_t addr, bool guard);

// True if addr lies in a page made absent by set_guard (or page 0).
bool is_guard(uint64_t addr);

}  // namespace paging
