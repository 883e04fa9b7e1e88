#include "core/panic.hh"

#include <stdarg.h>

#include <atomic>

#include "core/console.hh"
#include "core/percpu.hh"
#include "cpu.hh"
#include "debug_exit.hh"

// The symbol table: generated from the first link pass (scripts/ksyms.sh).
// Weak, so the first pass links without it (the addresses are then 0).
extern "C" {
extern const uint64_t ksyms_count __attribute__((weak));
extern const uint64_t ksyms_addr[] __attribute__((weak));
extern const char* const ksyms_name[] __attribute__((weak));
extern char _kernel_start[], _etext[];
}

namespace {

// The CPU reporting a panic (-1: none). NOTE: with several CPUs, the first
// to panic reports and ends the VM; another CPU that panics meanwhile halts
// quietly instead of interleaving its report (or ending the VM mid-report).
std::atomic<int> panicking_cpu{-1};

bool plausible_frame(uint64_t rbp)
{
    // Frames live in kernel memory below 4 GiB (the identity map), aligned.
    return rbp >= 0x1000 && rbp < (4ull << 30) && (rbp & 7) == 0;
}

void print_frame(int n, uint64_t addr)
{
    uint64_t off;
    const char* name = ksym_lookup(addr, &off);
    if (name) {
        kprintf("  #%d 0x%lx %s+0x%lx\n", n, addr, name, off);
    } else {
        kprintf("  #%d 0x%lx\n", n, addr);
    }
}

}  // namespace

const char* ksym_lookup(uint64_t addr, uint64_t* offset)
{
    if (&ksyms_count == nullptr || ksyms_count == 0) {
        return nullptr;
    }
    if (addr < reinterpret_cast<uint64_t>(_kernel_start) || addr >= reinterpret_cast<uint64_t>(_etext)) {
        return nullptr;
    }
    // The last symbol at or below addr.
    uint64_t lo = 0, hi = ksyms_count;
    while (hi - lo > 1) {
        uint64_t mid = (lo + hi) / 2;
        if (ksyms_addr[mid] <= addr) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if (ksyms_addr[lo] > addr) {
        return nullptr;
    }
    *offset = addr - ksyms_addr[lo];
    return ksyms_name[lo];
}

void print_backtrace(uint64_t rbp, uint64_t rip)
{
    kprintf("backtrace:\n");
    int n = 0;
    if (rip) {
        print_frame(n++, rip);
    }
    // Each frame: [rbp] = caller's rbp, [rbp + 8] = return address. The chain
    // ends at rbp == 0 (boot.S and new threads start with it).
    for (; n < 32 && plausible_frame(rbp); n++) {
        auto* frame = reinterpret_cast<const uint64_t*>(rbp);
        uint64_t ret = frame[1];
        if (!ret) {
            break;
        }
        // The return address points after the call; name the call itself.
        print_frame(n, ret - 1);
        if (frame[0] <= rbp) {
            break;  // frames go up the stack; anything else is garbage
        }
        rbp = frame[0];
    }
}

void panic_begin()
{
    arch::irq_disable();
    int me = int(this_cpu()->id);
    int expected = -1;
    if (panicking_cpu.compare_exchange_strong(expected, me)) {
        return;
    }
    if (expected == me) {
        // A panic while panicking (say, a fault in the backtrace): stop here.
        console::write("panic: nested panic\n", 20);
        debug_exit::exit_panic();
    }
    arch::halt_forever();  // another CPU is reporting its panic and will end the VM
}

void panic_end()
{
    kprintf("panic: halting (QEMU exit status 255)\n");
    debug_exit::exit_panic();
}

void panic(const char* fmt, ...)
{
    panic_begin();
    console::write("panic: ", 7);
    va_list ap;
    va_start(ap, fmt);
    vkprintf(fmt, ap);
    va_end(ap);
    console::write("\n", 1);
    print_backtrace(reinterpret_cast<uint64_t>(__builtin_frame_address(0)), 0);
    panic_end();
}
