#include "core/percpu.hh"

#include "cpu.hh"

// constinit: usable from the first instruction of kernel_entry, before any
// constructor has run.
constinit cpu boot_cpu;
cpu* cpus[max_cpus];
constinit std::atomic<unsigned> ncpus{0};
static_assert(sizeof(ncpus) == 4, "gdb reads ncpus as 4 bytes");

void percpu_install(cpu* c)
{
    constexpr uint32_t msr_gs_base = 0xc0000101;
    c->self = c;
    arch::wrmsr(msr_gs_base, reinterpret_cast<uint64_t>(c));
}
