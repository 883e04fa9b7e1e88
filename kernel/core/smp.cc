#include "core/smp.hh"

#include <atomic>
#include <new>

#include "acpi.hh"
#include "core/console.hh"
#include "core/page_alloc.hh"
#include "core/panic.hh"
#include "core/percpu.hh"
#include "core/sched.hh"
#include "core/thread.hh"
#include "core/trace.hh"
#include "cpu.hh"
#include "gdt.hh"
#include "interrupts.hh"
#include "lapic.hh"
#include "lib/printf.hh"
#include "lib/string.hh"
#include "tsc.hh"
#include "tsc_sync.hh"

extern "C" {
extern const char ap_trampoline_start[], ap_trampoline_end[];
// Read by ap_boot.S's 64-bit entry: the AP being started.
cpu* ap_boot_cpu;
uint64_t ap_boot_stack;
[[noreturn]] void ap_entry(cpu* c);
}

namespace {

constexpr uint64_t tramp_base = 0x8000;  // ap_boot.S: TRAMP_BASE (SIPI vector 8)
constexpr size_t idle_stack_size = 32 * 1024;

// The handshake with the AP being started: alive (answering the TSC
// handshake), synced (done answering). Then it waits for released[its id],
// its own flag, so the next AP's handshake cannot confuse it.
enum : uint32_t { ap_none, ap_alive, ap_synced };
std::atomic<uint32_t> ap_state;
std::atomic<bool> released[max_cpus];

void delay_us(uint64_t us)
{
    uint64_t end = tsc::now() + tsc::from_ns(us * 1000);
    while (tsc::now() < end) {
        arch::cpu_relax();
    }
}

bool wait_state(uint32_t want, uint64_t us)
{
    uint64_t end = tsc::now() + tsc::from_ns(us * 1000);
    while (ap_state.load(std::memory_order_acquire) != want) {
        if (tsc::now() > end) {
            return false;
        }
        arch::cpu_relax();
    }
    return true;
}

cpu* new_cpu(unsigned id, uint32_t apic_id)
{
    void* mem = pages::alloc(pages::pages_for(sizeof(cpu)));
    if (!mem) {
        panic("smp: no memory for CPU %u", id);
    }
    cpu* c = new (mem) cpu{};
    c->id = id;
    c->apic_id = apic_id;
    void* stack = threads::alloc_stack(idle_stack_size);
    if (!stack) {
        panic("smp: no memory for CPU %u's idle stack", id);
    }
    char name[16];
    snprintf(name, sizeof name, "idle%u", id);
    c->idle = threads::adopt_boot_context(c, name, stack, idle_stack_size);
    return c;
}

// INIT, then STARTUP (twice if need be), as the MP specification has it. QEMU
// needs none of the specified delays; short ones keep the boot fast.
void kick(uint32_t apic_id)
{
    const uint32_t page = uint32_t(tramp_base >> 12);
    lapic::send_init(apic_id);
    delay_us(10);
    lapic::send_startup(apic_id, page);
    if (wait_state(ap_alive, 10000)) {
        return;
    }
    lapic::send_startup(apic_id, page);
    if (!wait_state(ap_alive, 5000000)) {
        panic("smp: the CPU with APIC id %u did not start", apic_id);
    }
}

}  // namespace

// The AP's first C++ code, on its idle stack (ap_boot.S).
void ap_entry(cpu* c)
{
    percpu_install(c);
    arch::gdt_init(c->arch);
    arch::idt_load();
    lapic::init();
    lapic::timer_enable();
    sched::init_cpu(c);
    ap_state.store(ap_alive, std::memory_order_release);
    tsc_sync::answer();
    ap_state.store(ap_synced, std::memory_order_release);
    // Wait until the boot CPU has published this CPU (ring, cpus[], ncpus).
    while (!released[c->id].load(std::memory_order_acquire)) {
        arch::cpu_relax();
    }
    sched::idle_loop();
}

namespace smp {

void start_aps(const acpi::cpu_list& found, uint64_t ring_bytes, trace::ring_mode mode)
{
    const uint32_t bsp = lapic::id();
    boot_cpu.apic_id = bsp;
    memcpy(reinterpret_cast<void*>(tramp_base), ap_trampoline_start, size_t(ap_trampoline_end - ap_trampoline_start));
    // Generous: under TCG on a loaded host a vCPU thread can be off its host
    // core for a long time; a slow answer is no reason to give up on a CPU.
    const uint64_t round_timeout = tsc::from_ns(5000000000ull);
    const uint64_t good_rtt = tsc::from_ns(5000);            // offset known to +-2.5 us
    for (unsigned i = 0; i < found.n; i++) {
        uint32_t apic_id = found.apic_id[i];
        unsigned id = online_cpus();
        if (apic_id == bsp) {
            continue;
        }
        if (id >= max_cpus) {
            kprintf("smp: more than %u CPUs; the rest stay off\n", max_cpus);
            break;
        }
        cpu* c = new_cpu(id, apic_id);
        ap_boot_cpu = c;
        ap_boot_stack = reinterpret_cast<uint64_t>(c->idle->stack) + c->idle->stack_size;
        tsc_sync::reset();
        ap_state.store(ap_none, std::memory_order_seq_cst);
        uint64_t tk0 = tsc::now();
        kick(apic_id);
        uint64_t tk1 = tsc::now();
        tsc_sync::result r;
        if (!tsc_sync::measure(&r, round_timeout, good_rtt) || !wait_state(ap_synced, 5000000)) {
            panic("smp: CPU %u stopped answering the TSC handshake", id);
        }
        if (!trace_rt::init_cpu(c, ring_bytes, mode, r.offset)) {
            panic("smp: no trace ring for CPU %u", id);
        }
        cpus[id] = c;
        ncpus.store(id + 1, std::memory_order_release);
        released[id].store(true, std::memory_order_release);
        kprintf("smp: CPU %u (APIC %u) online after %lu us, TSC offset %ld +- %lu ticks (%u rounds, %lu us)\n", id,
                apic_id, tsc::to_us(tk1 - tk0), r.offset, r.rtt / 2, r.rounds, tsc::to_us(tsc::now() - tk1));
    }
    kprintf("smp: %u CPU(s) online (%s)\n", online_cpus(), found.source);
}

}  // namespace smp
