// Which CPUs the machine has: the local APIC ids of every enabled processor,
// from the ACPI MADT (through the RSDP that PVH's start_info points at, or
// found by scanning the BIOS area), else QEMU's fw_cfg CPU count (APIC ids
// 0..n-1, QEMU's default topology).
#pragma once

#include <stdint.h>

namespace pvh {
struct start_info;
}

namespace acpi {

struct cpu_list {
    static constexpr unsigned max = 64;
    uint32_t apic_id[max];
    unsigned n = 0;
    const char* source = "none";  // "madt", "fw_cfg" or "none" (then just the boot CPU)
};

// Reads the tables; call before page 0 or low memory is reused (ACPI tables
// live in reserved memory, which the page allocator never hands out).
void find_cpus(const pvh::start_info* si, cpu_list* out);

}  // namespace acpi
