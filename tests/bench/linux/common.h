// Shared by the Linux guest's benchmark programs: the monotonic clock, the
// calibrated busy loop (the same idea as kernel/apps/busy.hh: hold and think
// times without reading the clock inside the loop, which under TCG would
// mostly measure QEMU), and "--name value" option parsing.
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((noinline)) static void busy_spin(uint64_t loops)
{
    for (uint64_t i = 0; i < loops; i++) {
        __asm__ volatile("" : : "r"(i) : "memory");
    }
}

// Loops per microsecond, measured over ~2 ms (as busy::loops_per_us does).
static inline uint64_t busy_loops_per_us(void)
{
    uint64_t n = 1000;
    for (;;) {
        uint64_t t0 = now_ns();
        busy_spin(n);
        uint64_t us = (now_ns() - t0) / 1000;
        if (us >= 2000 || n >= (1ull << 40)) {
            uint64_t r = us ? n / us : n;
            return r ? r : 1;
        }
        n *= 2;
    }
}

struct option_u64 {
    const char* name;
    uint64_t* value;
};

// Parses "--name value" pairs; prints the offender and returns 0 on anything else.
static inline int parse_options(int argc, char** argv, int first, struct option_u64* opts, int nopts)
{
    for (int i = first; i < argc; i += 2) {
        int found = 0;
        for (int k = 0; k < nopts; k++) {
            if (strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + 2, opts[k].name) == 0 && i + 1 < argc) {
                char* end;
                *opts[k].value = strtoull(argv[i + 1], &end, 10);
                found = *end == 0;
            }
        }
        if (!found) {
            fprintf(stderr, "bad option %s\n", argv[i]);
            return 0;
        }
    }
    return 1;
}
