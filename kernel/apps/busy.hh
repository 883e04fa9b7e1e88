// Busy work of a given length without reading the clock in the loop: under
// multi-threaded TCG every rdtsc is a call into QEMU that contends with the
// other vCPUs' rdtscs, so a hold or think time measured by polling the TSC
// would mostly measure QEMU. The loop rate is calibrated once per app run.
#pragma once

#include <stdint.h>

#include "tsc.hh"

namespace busy {

__attribute__((noinline)) inline void spin(uint64_t loops)
{
    for (uint64_t i = 0; i < loops; i++) {
        asm volatile("" : : "r"(i) : "memory");
    }
}

// Loops per microsecond on this CPU, measured over ~2 ms.
inline uint64_t loops_per_us()
{
    uint64_t n = 1000;
    for (;;) {
        uint64_t t0 = tsc::now();
        spin(n);
        uint64_t us = tsc::to_us(tsc::now() - t0);
        if (us >= 2000 || n >= (uint64_t(1) << 40)) {
            uint64_t r = us ? n / us : n;
            return r ? r : 1;
        }
        n *= 2;
    }
}

inline uint64_t loops_for_ns(uint64_t ns, uint64_t per_us) { return ns * per_us / 1000; }

}  // namespace busy
