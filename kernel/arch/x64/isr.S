// Interrupt and exception entry stubs: one per vector, all alike. Each pushes
// a dummy error code where the CPU pushes none, then the vector number, and
// jumps to isr_common, which saves every general register (see
// interrupt_frame in interrupts.hh) and calls interrupt_dispatch().
//
// Interrupts run on the current thread's stack; the dispatcher may switch
// threads (preemption) before returning here: the frame stays on the
// preempted thread's stack until that thread is switched back in.

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
