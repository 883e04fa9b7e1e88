#include "exceptions.hh"

#include "core/panic.hh"
#include "core/thread.hh"
#include "paging.hh"
#include "cpu.hh"
#include "core/console.hh"

namespace {

const char* const names[32] = {
    "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range", "invalid opcode",
    "device not available", "double fault", "coprocessor overrun", "invalid TSS",
    "segment not present", "stack fault", "general protection", "page fault", "reserved",
    "x87 FPU error", "alignment check", "machine check", "SIMD error", "virtualization",
    "control protection", "reserved", "reserved", "reserved", "reserved", "reserved", "reserved",
    "hypervisor injection", "VMM communication", "security", "reserved",
};

}  // namespace

void exception_panic(arch::interrupt_frame* f)
{
    panic_begin();
    kprintf("panic: exception %lu (%s), error code 0x%lx\n", f->vector, names[f->vector & 31],
            f->error);
    const uint64_t cr2 = arch::read_cr2();
    if (f->vector == 14) {
        kprintf("  page fault address %lx (%s, %s)\n", cr2, f->error & 1 ? "protection" : "not present",
                f->error & 2 ? "write" : "read");
    }
    // A fault in a guard page, or a double fault right after one (the CPU
    // could not push the page fault's frame on the overflowed stack).
    if ((f->vector == 14 || f->vector == 8) && cr2 >= 4096 && paging::is_guard(cr2)) {
        thread* t = threads::owning_stack(cr2);
        kprintf("  stack overflow: thread %u (%s), %zu-byte stack\n", t ? t->id : 0,
                t ? t->name : "?", t ? t->stack_size : 0);
    } else if (f->vector == 14 && cr2 < 4096) {
        kprintf("  (a null pointer dereference)\n");
    }
    if (f->vector == 6) {
        kprintf("  (an SSE instruction? the kernel runs with SSE disabled)\n");
    }
    kprintf("  rip %016lx rsp %016lx rflags %lx cs %lx\n", f->rip, f->rsp, f->rflags, f->cs);
    kprintf("  rax %016lx rbx %016lx rcx %016lx rdx %016lx\n", f->rax, f->rbx, f->rcx, f->rdx);
    kprintf("  rsi %016lx rdi %016lx rbp %016lx r8  %016lx\n", f->rsi, f->rdi, f->rbp, f->r8);
    kprintf("  r9  %016lx r10 %016lx r11 %016lx r12 %016lx\n", f->r9, f->r10, f->r11, f->r12);
    kprintf("  r13 %016lx r14 %016lx r15 %016lx\n", f->r13, f->r14, f->r15);
    print_backtrace(f->rbp, f->rip);
    panic_end();
}
