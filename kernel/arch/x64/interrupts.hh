// The IDT, interrupt entry and dispatch. Every vector has a stub (isr.S) that
// saves all general registers and calls interrupt_dispatch(frame).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace arch {

constexpr uint8_t vec_pic_base = 0x20;  // legacy 8259 remapped here, masked
constexpr uint8_t vec_timer = 0xf0;     // LAPIC timer
constexpr uint8_t vec_wakeup = 0xf1;    // IPI: take the threads queued for this CPU, maybe balance
constexpr uint8_t vec_lapic_error = 0xfe;
constexpr uint8_t vec_spurious = 0xff;

// What isr.S pushes, lowest address first.
struct interrupt_frame {
    uint64_t r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;  // pushed by the CPU
};
static_assert(sizeof(interrupt_frame) == 22 * 8, "isr.S frame layout");
static_assert(offsetof(interrupt_frame, vector) == 15 * 8, "isr.S frame: vector");
static_assert(offsetof(interrupt_frame, rip) == 17 * 8, "isr.S frame: rip");

void idt_init();   // builds the shared IDT (once)
void idt_load();   // loads it on this CPU

// Masks the legacy 8259 PICs (remapped away from the exception vectors first,
// so a spurious PIC interrupt cannot look like an exception).
void pic_disable();

}  // namespace arch

// Called from isr.S with interrupts off.
extern "C" void interrupt_dispatch(arch::interrupt_frame* f);
