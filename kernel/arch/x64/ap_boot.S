// Application processor entry. An AP starts (after INIT-SIPI-SIPI) in real
// mode at ap_tramp_base, where core/smp.cc copied the 16/32-bit part below.
// It climbs to long mode on the boot page tables (the identity map, shared by
// all CPUs) and jumps into the kernel proper at ap_long_mode, which picks up
// the stack and struct cpu the boot CPU prepared for it (one AP at a time).

#define TRAMP_BASE 0x8000           // core/smp.cc: ap_tramp_base (page 8, below 1 MiB)
#define T(sym) (TRAMP_BASE + ((sym) - ap_trampoline_start))

    .section .rodata.ap_trampoline, "a"
    .globl ap_trampoline_start, ap_trampoline_end
    .code16
ap_trampoline_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl T(tramp_gdt_ptr)
    movl %cr0, %eax
    orl $1, %eax                    // PE
    movl %eax, %cr0
    ljmpl $0x08, $T(tramp32)

    .code32
tramp32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $(1 << 5), %eax             // PAE
    movl %eax, %cr4
    movl $pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx          // EFER
    rdmsr
    orl $(1 << 8), %eax             // LME
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax    // PG | WP | PE
    movl %eax, %cr0
    ljmp $0x18, $ap_long_mode

    .balign 8
tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        // 0x08: 32-bit code
    .quad 0x00cf92000000ffff        // 0x10: data
    .quad 0x00af9a000000ffff        // 0x18: 64-bit code
tramp_gdt_ptr:
    .word tramp_gdt_ptr - tramp_gdt - 1
    .long T(tramp_gdt)
ap_trampoline_end:

    .text
    .code64
    .cfi_sections .debug_frame
    .globl ap_long_mode
ap_long_mode:
    .cfi_startproc
    .cfi_undefined rip              // outermost frame of the AP's boot (later idle) thread
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq ap_boot_stack(%rip), %rsp
    xorl %ebp, %ebp
    movq ap_boot_cpu(%rip), %rdi
    call ap_entry
1:  cli
    hlt
    jmp 1b
    .cfi_endproc
