// Per-CPU GDT and TSS. Long mode ignores segmentation, but a TSS is still
// needed for its interrupt stack table: a double fault (for example a thread
// overflowing its stack) must run on a stack of its own to be reported.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace arch {

struct __attribute__((packed)) tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
};
static_assert(sizeof(tss64) == 104, "64-bit TSS size");
static_assert(offsetof(tss64, ist) == 36, "TSS IST offset");

constexpr uint16_t sel_code = 0x08;
constexpr uint16_t sel_data = 0x10;
constexpr uint16_t sel_tss = 0x18;
constexpr unsigned ist_double_fault = 1;
constexpr unsigned ist_nmi = 2;

// The architecture's share of struct cpu.
struct arch_cpu {
    alignas(16) uint64_t gdt[5] = {};  // null, code, data, TSS (two slots)
    alignas(16) tss64 tss = {};
    alignas(16) uint8_t df_stack[8192] = {};
    alignas(16) uint8_t nmi_stack[4096] = {};
};

// Loads this CPU's GDT and TSS (reloading every segment register except GS,
// whose base register holds the per-CPU pointer: a selector load would not
// clear the MSR, but keep the order explicit anyway).
void gdt_init(arch_cpu& a);

}  // namespace arch
