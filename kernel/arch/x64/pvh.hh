// The PVH boot ABI (Xen's public arch-x86/hvm/start_info.h, as QEMU fills it
// for -kernel ELF images with a XEN_ELFNOTE_PHYS32_ENTRY note).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace pvh {

constexpr uint32_t start_info_magic = 0x336ec578;

struct start_info {
    uint32_t magic;
    uint32_t version;  // 1 and later carry the memory map
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};
static_assert(sizeof(start_info) == 56, "hvm_start_info size");
static_assert(offsetof(start_info, cmdline_paddr) == 24, "hvm_start_info cmdline");
static_assert(offsetof(start_info, memmap_paddr) == 40, "hvm_start_info memmap");

constexpr uint32_t memmap_ram = 1;  // E820 type: usable RAM

struct memmap_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};
static_assert(sizeof(memmap_entry) == 24, "hvm_memmap_table_entry size");

}  // namespace pvh
