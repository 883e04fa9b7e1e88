// Bringing up the application processors (APs): for each CPU the machine
// has (arch/x64/acpi.hh), the boot CPU prepares a struct cpu, an idle thread
// with its stack and a trace ring, starts the AP with INIT-SIPI-SIPI through
// a real-mode trampoline (arch/x64/ap_boot.S), measures its TSC offset
// (arch/x64/tsc_sync.hh), then lets it into its idle loop. One AP at a time.
#pragma once

#include <stdint.h>

#include "trace/ring.hh"

namespace acpi {
struct cpu_list;
}

namespace smp {

// Boot CPU, after its own trace ring and timers are up and before any thread
// runs. Panics if an AP does not come up (a half-started AP would be worse).
void start_aps(const acpi::cpu_list& cpus_found, uint64_t ring_bytes, trace::ring_mode mode);

}  // namespace smp
