// thread* arch_switch(thread* prev /*rdi*/, thread* next /*rsi*/)
//
// The whole context switch: only the callee-saved registers and the stack
// pointer are saved, because the switch is an ordinary function call: the
// caller already saved what the ABI lets us clobber, and a preempted thread
// had all its registers saved by the interrupt entry (isr.S) further up its
// stack. Interrupts are off throughout. Returns, on next's stack, the thread
// we came from, so the scheduler can finish switching away from it.
    .cfi_sections .debug_frame      // for gdb; .eh_frame is discarded at link
    .text
    .globl arch_switch
    .type arch_switch, @function
arch_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)               // prev->saved_rsp (offset 0)
    movq (%rsi), %rsp               // next->saved_rsp
    movq %rdi, %rax
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size arch_switch, . - arch_switch

// First instruction of every new thread: arch_switch "returns" here with
// %rax = the previous thread and %r12 = this thread (threads::create builds
// that initial frame).
    .globl thread_trampoline
    .type thread_trampoline, @function
thread_trampoline:
    .cfi_startproc
    .cfi_undefined rip              // the outermost frame of every thread (stops gdb's bt)
    movq %rax, %rdi
    movq %r12, %rsi
    call thread_start               // never returns
    ud2
    .cfi_endproc
    .size thread_trampoline, . - thread_trampoline
