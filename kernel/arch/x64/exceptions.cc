#include "exceptions.hh"

#include "core/panic.hh"
#include "cpu.hh"
#include "drivers/console.hh"

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
    if (f->vector == 14) {
        kprintf("  page fault address %lx (%s, %s)\n", arch::read_cr2(),
                f->error & 1 ? "protection" : "not present", f->error & 2 ? "write" : "read");
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
