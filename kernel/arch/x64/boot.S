// PVH entry: QEMU (-kernel with the note below) starts us in 32-bit protected
// mode, paging off, %ebx = physical address of struct hvm_start_info.
// We stamp the TSC, zero .bss, map the first 4 GiB 1:1 with 2 MiB pages, enter
// long mode and call kernel_entry(start_info) on the boot stack, which later
// becomes CPU 0's idle thread stack.

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define PVH_MAGIC 0x336ec578

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                         // namesz ("Xen\0")
    .long 4                         // descsz
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .balign 4
    .long pvh_entry                 // physical == virtual (linked at 1 MiB)
    .balign 4

    .section .bss.pagetables, "aw", @nobits
    .balign 4096
    .globl pml4, pdpt, pd           // arch/x64/paging.cc edits them later
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4096 * 4              // 4 x 512 x 2 MiB = 4 GiB
pt0:    .skip 4096                  // the first 2 MiB in 4 KiB pages

    .section .bss
    .balign 16
    .globl boot_stack_bottom, boot_stack_top
boot_stack_bottom:
    .skip 65536
boot_stack_top:

    .section .data
    .balign 8
    .globl boot_tsc
boot_tsc: .quad 0                   // TSC at the first kernel instruction
    .globl boot_start_info
boot_start_info: .quad 0

    .balign 8
gdt32_64:                           // just enough GDT to reach long mode;
    .quad 0                         // core/ installs the real per-CPU GDT
    .quad 0x00af9a000000ffff        // 0x08: 64-bit code, DPL 0
    .quad 0x00cf92000000ffff        // 0x10: data
gdt32_64_end:
gdt32_64_ptr:
    .word gdt32_64_end - gdt32_64 - 1
    .quad gdt32_64

    .section .text.boot, "ax"
    .code32
    .globl pvh_entry
pvh_entry:
    cli
    cld
    // First: the boot timestamp (edx:eax), before any other work.
    rdtsc
    movl %eax, boot_tsc
    movl %edx, boot_tsc + 4

    // Only PVH is supported; anything else gets a clean halt (there is no
    // console yet, and guessing at another boot protocol helps nobody).
    cmpl $PVH_MAGIC, (%ebx)
    jne 9f
    movl %ebx, boot_start_info

    // Zero .bss (page tables, boot stack, per-CPU data). QEMU's ELF loader
    // zero-fills it already, but a reset or another loader may not.
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    // PML4[0] -> PDPT; PDPT[0..3] -> PD0..PD3.
    movl $pdpt + 0x3, pml4          // present | writable
    movl $pd + 0x3, %eax
    movl $pdpt, %edi
    movl $4, %ecx
1:  movl %eax, (%edi)
    addl $4096, %eax
    addl $8, %edi
    loop 1b

    // 2048 PD entries of 2 MiB: present | writable | PS. Above 3 GiB lies
    // MMIO (LAPIC, IOAPIC, virtio-mmio, PCI holes): mapped uncached (PCD|PWT).
    movl $pd, %edi
    xorl %esi, %esi                 // index
2:  movl %esi, %eax
    shll $21, %eax                  // low 32 bits of index * 2 MiB
    orl $0x83, %eax
    cmpl $1536, %esi
    jb 3f
    orl $0x18, %eax
3:  movl %esi, %edx
    shrl $11, %edx                  // high bits of the physical address (always 0 below 4 GiB)
    movl %eax, (%edi)
    movl %edx, 4(%edi)
    addl $8, %edi
    incl %esi
    cmpl $2048, %esi
    jb 2b

    // The first 2 MiB in 4 KiB pages, so that the kernel can unmap page 0
    // once it has read the boot data there (QEMU's q35 path puts the PVH
    // memory map in it): a null pointer dereference then faults.
    movl $pt0, %edi
    movl $0x3, %eax                 // page 0, present | writable
4:  movl %eax, (%edi)
    addl $4096, %eax
    addl $8, %edi
    cmpl $pt0 + 4096, %edi
    jb 4b
    movl $pt0 + 0x3, pd

    movl $pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(1 << 5), %eax             // PAE
    movl %eax, %cr4
    movl $0xc0000080, %ecx          // EFER
    rdmsr
    orl $(1 << 8), %eax             // LME
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax    // PG | WP | PE
    movl %eax, %cr0
    lgdt gdt32_64_ptr
    ljmp $0x08, $long_mode

9:  hlt
    jmp 9b

    .code64
    .cfi_sections .debug_frame
long_mode:
    .cfi_startproc
    .cfi_undefined rip              // outermost frame of the boot (later idle) thread
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq $boot_stack_top, %rsp
    xorl %ebp, %ebp                 // end of the frame-pointer chain
    movl boot_start_info, %edi
    call kernel_entry
1:  cli
    hlt
    jmp 1b
    .cfi_endproc
