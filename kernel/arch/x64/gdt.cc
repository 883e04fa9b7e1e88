#include "gdt.hh"

namespace arch {

void gdt_init(arch_cpu& a)
{
    a.gdt[0] = 0;
    a.gdt[1] = 0x00af9a000000ffffull;  // 64-bit code, DPL 0
    a.gdt[2] = 0x00cf92000000ffffull;  // data
    uint64_t base = reinterpret_cast<uint64_t>(&a.tss);
    uint64_t limit = sizeof(tss64) - 1;
    a.gdt[3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |  // present, 64-bit TSS
               (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    a.gdt[4] = base >> 32;

    a.tss = {};
    a.tss.iomap_base = sizeof(tss64);  // no I/O bitmap
    a.tss.ist[ist_double_fault - 1] = reinterpret_cast<uint64_t>(a.df_stack + sizeof a.df_stack);
    a.tss.ist[ist_nmi - 1] = reinterpret_cast<uint64_t>(a.nmi_stack + sizeof a.nmi_stack);

    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } ptr = {sizeof a.gdt - 1, reinterpret_cast<uint64_t>(a.gdt)};
    asm volatile(
        "lgdt %0\n\t"
        "pushq %1\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "lretq\n"  // reload CS
        "1:\n\t"
        "movw %w2, %%ax\n\t"
        "movw %%ax, %%ds\n\t"
        "movw %%ax, %%es\n\t"
        "movw %%ax, %%ss\n\t"
        "ltr %w3"
        :
        : "m"(ptr), "i"(uint64_t(sel_code)), "r"(uint32_t(sel_data)), "r"(uint32_t(sel_tss))
        : "rax", "memory");
}

}  // namespace arch
