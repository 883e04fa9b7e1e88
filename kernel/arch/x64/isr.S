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
    // CFI (a debugging aid): the CFA is the end of the CPU's frame, as in isr_common.
    .cfi_startproc simple
    .cfi_signal_frame
    .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .cfi_def_cfa rsp, 48
    .else
    .cfi_def_cfa rsp, 40
    .endif
    .cfi_offset rip, -40
    .cfi_offset rsp, -16
    .cfi_offset rflags, -24
    .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    pushq $0
    .cfi_adjust_cfa_offset 8
    .endif
    pushq $\n
    .cfi_adjust_cfa_offset 8
    jmp isr_common
    .cfi_endproc
    .endm

    .set i, 0
    .rept 256
    isr %i
    .set i, i + 1
    .endr

    // Debugging aid: CFI for every instruction of isr_common, not only at the
    // call (gdb 13 dies with "Unknown CFA rule" when stopped where the CFA is
    // undefined). CFA = the end of the CPU's frame (ss), 56 bytes above the
    // vector at entry; each push moves it, each pop moves it back.
    .macro cfi_push reg
    pushq %\reg
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset \reg, 0
    .endm
    .macro cfi_pop reg
    popq %\reg
    .cfi_adjust_cfa_offset -8
    .cfi_restore \reg
    .endm

isr_common:
    .cfi_startproc simple
    .cfi_signal_frame
    .cfi_def_cfa rsp, 56
    .cfi_offset rip, -40
    .cfi_offset rsp, -16
    .cfi_offset rflags, -24
    cld
    cfi_push rax
    cfi_push rcx
    cfi_push rdx
    cfi_push rsi
    cfi_push rdi
    cfi_push r8
    cfi_push r9
    cfi_push r10
    cfi_push r11
    cfi_push rbx
    cfi_push rbp
    cfi_push r12
    cfi_push r13
    cfi_push r14
    cfi_push r15
    // A fake call frame (interrupted rip, interrupted rbp) so that frame-
    // pointer backtraces and gdb walk from the handler into the interrupted
    // code. 22 + 2 quadwords keep %rsp 16-byte aligned at the call.
    pushq 17*8(%rsp)
    .cfi_adjust_cfa_offset 8
    pushq %rbp
    .cfi_adjust_cfa_offset 8
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
    .cfi_def_cfa rsp, 176           // rbp is about to be popped: track the CFA by rsp again
    cfi_pop r15
    cfi_pop r14
    cfi_pop r13
    cfi_pop r12
    cfi_pop rbp
    cfi_pop rbx
    cfi_pop r11
    cfi_pop r10
    cfi_pop r9
    cfi_pop r8
    cfi_pop rdi
    cfi_pop rsi
    cfi_pop rdx
    cfi_pop rcx
    cfi_pop rax
    addq $16, %rsp                  // vector and error code
    .cfi_adjust_cfa_offset -16
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
