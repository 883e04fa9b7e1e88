#include "lapic.hh"

#include "cpu.hh"
#include "interrupts.hh"

namespace lapic {
namespace {

constexpr uint64_t base = 0xfee00000;  // identity-mapped, uncached (boot.S)
constexpr uint32_t msr_apic_base = 0x1b;
constexpr uint64_t apic_global_enable = 1u << 11;

enum reg : uint32_t {
    reg_id = 0x20,
    reg_tpr = 0x80,
    reg_eoi = 0xb0,
    reg_svr = 0xf0,
    reg_esr = 0x280,
    reg_icr_lo = 0x300,
    reg_icr_hi = 0x310,
    reg_lvt_timer = 0x320,
    reg_lvt_lint0 = 0x350,
    reg_lvt_error = 0x370,
    reg_timer_init = 0x380,
    reg_timer_current = 0x390,
    reg_timer_divide = 0x3e0,
};

constexpr uint32_t lvt_masked = 1u << 16;
constexpr uint32_t svr_enable = 1u << 8;
constexpr uint32_t divide_by_16 = 0x3;  // a 32-bit count then spans ~68 s at QEMU's 1 GHz bus

inline volatile uint32_t* r(uint32_t off) { return reinterpret_cast<volatile uint32_t*>(base + off); }
inline uint32_t read(uint32_t off) { return *r(off); }
inline void write(uint32_t off, uint32_t v) { *r(off) = v; }

}  // namespace

void init()
{
    arch::wrmsr(msr_apic_base, (arch::rdmsr(msr_apic_base) & ~0xfffull) | base | apic_global_enable);
    write(reg_svr, svr_enable | arch::vec_spurious);
    write(reg_tpr, 0);
    write(reg_lvt_lint0, lvt_masked);  // the 8259 path (ExtINT) stays closed
    write(reg_lvt_error, arch::vec_lapic_error);
    write(reg_timer_divide, divide_by_16);
    write(reg_lvt_timer, lvt_masked | arch::vec_timer);
}

void eoi() { write(reg_eoi, 0); }

uint32_t id() { return read(reg_id) >> 24; }

uint32_t read_esr()
{
    write(reg_esr, 0);  // the register latches on write
    return read(reg_esr);
}

void calibrate_start()
{
    write(reg_lvt_timer, lvt_masked | arch::vec_timer);
    write(reg_timer_init, 0xffffffff);
}

uint32_t calibrate_end()
{
    uint32_t left = read(reg_timer_current);
    write(reg_timer_init, 0);
    return 0xffffffff - left;
}

void timer_enable()
{
    // One-shot and unmasked from now on; a count of 0 keeps it stopped, so
    // arming it is a single register write (each costs a VM exit).
    write(reg_timer_init, 0);
    write(reg_lvt_timer, arch::vec_timer);
}

void timer_oneshot(uint32_t count) { write(reg_timer_init, count ? count : 1); }

void timer_stop() { write(reg_timer_init, 0); }

namespace {

constexpr uint32_t icr_init = 5u << 8, icr_startup = 6u << 8;
constexpr uint32_t icr_assert = 1u << 14, icr_level = 1u << 15;

// ICR high then low: the write of the low half sends. An interrupt handler
// sending its own IPI between the two writes would retarget ours, so
// interrupts are off across both. (xAPIC has a delivery-status bit to wait
// on before the next send; QEMU delivers synchronously and never sets it.)
void send(uint32_t apic_id, uint32_t low)
{
    irq_guard g;
    write(reg_icr_hi, apic_id << 24);
    write(reg_icr_lo, low);
}

}  // namespace

void send_ipi(uint32_t apic_id, uint8_t vector) { send(apic_id, icr_assert | vector); }

void send_init(uint32_t apic_id) { send(apic_id, icr_init | icr_assert | icr_level); }

void send_startup(uint32_t apic_id, uint32_t page) { send(apic_id, icr_startup | icr_assert | (page & 0xff)); }

}  // namespace lapic
