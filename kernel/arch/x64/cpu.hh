// Thin wrappers over x86-64 instructions the kernel needs. All inline: most
// sit on hot paths (interrupt masking around trace records, rdtsc).
#pragma once

#include <stdint.h>

namespace arch {

constexpr uint64_t rflags_if = 1u << 9;

inline void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
inline void outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
inline void outl(uint16_t port, uint32_t v) { asm volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

inline uint64_t rdtsc()
{
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t(hi) << 32) | lo;
}

inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (uint64_t(hi) << 32) | lo;
}

inline void wrmsr(uint32_t msr, uint64_t v)
{
    asm volatile("wrmsr" : : "c"(msr), "a"(uint32_t(v)), "d"(uint32_t(v >> 32)) : "memory");
}

inline uint64_t read_cr2()
{
    uint64_t v;
    asm volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

inline void irq_disable() { asm volatile("cli" : : : "memory"); }
inline void irq_enable() { asm volatile("sti" : : : "memory"); }

inline uint64_t read_rflags()
{
    uint64_t f;
    asm volatile("pushfq; popq %0" : "=r"(f) : : "memory");
    return f;
}

inline bool irqs_enabled() { return read_rflags() & rflags_if; }

// Returns the previous RFLAGS; interrupts are off afterwards.
inline uint64_t irq_save()
{
    uint64_t f;
    asm volatile("pushfq; popq %0; cli" : "=r"(f) : : "memory");
    return f;
}

// A conditional sti instead of popfq: popfq is microcoded and slower, and IF
// is the only flag we mean to restore.
inline void irq_restore(uint64_t f)
{
    if (f & rflags_if) {
        asm volatile("sti" : : : "memory");
    }
}

// sti;hlt is atomic: sti only takes effect after the next instruction, so an
// interrupt pending at this point wakes the hlt instead of being missed.
inline void enable_and_halt() { asm volatile("sti; hlt" : : : "memory"); }

inline void cpu_relax() { asm volatile("pause" : : : "memory"); }

[[noreturn]] inline void halt_forever()
{
    for (;;) {
        asm volatile("cli; hlt");
    }
}

}  // namespace arch

// Interrupts off for one scope: the protection for per-CPU state on one CPU
// (there are no spinlocks in this kernel).
class irq_guard {
public:
    irq_guard() : flags_(arch::irq_save()) {}
    ~irq_guard() { arch::irq_restore(flags_); }
    irq_guard(const irq_guard&) = delete;
    irq_guard& operator=(const irq_guard&) = delete;

private:
    uint64_t flags_;
};
