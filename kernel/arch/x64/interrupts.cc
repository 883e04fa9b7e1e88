#include "interrupts.hh"

#include "core/console.hh"
#include "core/percpu.hh"
#include "core/sched.hh"
#include "core/timer.hh"
#include "cpu.hh"
#include "exceptions.hh"
#include "gdt.hh"
#include "irq.hh"
#include "lapic.hh"

extern "C" const uint64_t isr_stubs[256];

namespace arch {
namespace {

struct __attribute__((packed)) idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t zero;
};
static_assert(sizeof(idt_gate) == 16, "IDT gate size");

alignas(16) idt_gate idt[256];

constexpr uint8_t gate_interrupt = 0x8e;  // present, DPL 0, 64-bit interrupt gate (IF cleared)

}  // namespace

void idt_init()
{
    for (unsigned v = 0; v < 256; v++) {
        uint64_t a = isr_stubs[v];
        idt[v] = {uint16_t(a), sel_code, 0, gate_interrupt, uint16_t(a >> 16), uint32_t(a >> 32), 0};
    }
    idt[8].ist = ist_double_fault;
    idt[2].ist = ist_nmi;
}

void idt_load()
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } ptr = {sizeof idt - 1, reinterpret_cast<uint64_t>(idt)};
    asm volatile("lidt %0" : : "m"(ptr));
}

void pic_disable()
{
    // ICW1..ICW4: remap master to 0x20-0x27 and slave to 0x28-0x2f, then mask all.
    outb(0x20, 0x11);
    outb(0xa0, 0x11);
    outb(0x21, vec_pic_base);
    outb(0xa1, vec_pic_base + 8);
    outb(0x21, 0x04);
    outb(0xa1, 0x02);
    outb(0x21, 0x01);
    outb(0xa1, 0x01);
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

}  // namespace arch

extern "C" void interrupt_dispatch(arch::interrupt_frame* f)
{
    using namespace arch;
    if (f->vector < 32) {
        if (f->vector == 2) {
            kprintf("NMI at rip %lx (ignored)\n", f->rip);
            return;
        }
        exception_panic(f);  // no recoverable exceptions yet
    }
    switch (f->vector) {
    case vec_timer: {
        lapic::eoi();
        cpu* c = this_cpu();
        c->timer_frame = f;  // for the sampler (core/sampler.cc)
        timers::on_interrupt();
        c->timer_frame = nullptr;
        break;
    }
    case vec_wakeup:
        lapic::eoi();
        sched::on_wakeup_ipi();
        break;
    case vec_spurious:
        return;  // the LAPIC wants no EOI for these
    case vec_lapic_error:
        lapic::eoi();
        kprintf("lapic: error interrupt, ESR %x\n", lapic::read_esr());
        break;
    default:
        if (f->vector >= vec_pic_base && f->vector < vec_pic_base + 16) {
            return;  // a spurious legacy PIC interrupt (IRQ7/15): masked PICs still send those
        }
        if (irq::dispatch(uint8_t(f->vector))) {
            break;  // a device's: acknowledged, its thread woken
        }
        lapic::eoi();
        kprintf("interrupt: unexpected vector %lu\n", f->vector);
        break;
    }
    // Handlers only mark a thread to run; the switch happens here, on the way
    // out, once the handler's work is done and the LAPIC has its EOI.
    sched::on_interrupt_exit();
}
