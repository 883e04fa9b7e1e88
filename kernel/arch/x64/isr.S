// Interrupt and exception entry stubs: one per vector, all alike. Each pushes
// a dummy error code where the CPU pushes none, then the vector number, and
// jumps to isr_common, which saves every general register (see
// interrupt_frame in interrupts.hh) and calls interrupt_dispatch().
//
// Interrupts run on the current thread's stack; the dispatcher may switch
// threads (preemption) before returning here: the frame stays on the
// preempted thread's stack until that thread is switched back in.

    .cfi_sections .debug_frame      // for gdb; .eh_frame is discarded at link
    .text
    .altmacro
    .macro isr n
    .balign 16
isr_\n:
    .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    pushq $0
    .endif
    pushq $\n
    jmp isr_common
    .endm

    .set i, 0
    .rept 256
    isr %i
    .set i, i + 1
    .endr

isr_common:
    .cfi_startproc simple
    .cfi_signal_frame
    cld
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    // A fake call frame (interrupted rip, interrupted rbp) so that frame-
    // pointer backtraces and gdb walk from the handler into the interrupted
    // code. 22 + 2 quadwords keep %rsp 16-byte aligned at the call.
    pushq 17*8(%rsp)
    pushq %rbp
    movq %rsp, %rbp
    // For gdb, at the call below: the caller is the interrupted code, whose
    // registers are in the frame. CFA = the interrupted rsp slot's end
    // (rbp + 16 + 22*8); each saved register at its frame offset from there.
    .cfi_def_cfa rbp, 192
    .cfi_offset rip, -40
    .cfi_offset rsp, -16
    .cfi_offset rflags, -24
    .cfi_offset rax, -64
    .cfi_offset rcx, -72
    .cfi_offset rdx, -80
    .cfi_offset rsi, -88
    .cfi_offset rdi, -96
    .cfi_offset r8, -104
    .cfi_offset r9, -112
    .cfi_offset r10, -120
    .cfi_offset r11, -128
    .cfi_offset rbx, -136
    .cfi_offset rbp, -144
    .cfi_offset r12, -152
    .cfi_offset r13, -160
    .cfi_offset r14, -168
    .cfi_offset r15, -176
    leaq 16(%rsp), %rdi
    call interrupt_dispatch
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $16, %rsp                  // vector and error code
    iretq
    .cfi_endproc

    .section .rodata
    .balign 8
    .globl isr_stubs
isr_stubs:
    .macro stub_addr n
    .quad isr_\n
    .endm
    .set i, 0
    .rept 256
    stub_addr %i
    .set i, i + 1
    .endr
