// Shared main() of the tracepoint cost programs (tp_ours.cc, tp_lttng.cc): the same
// loops for both sides, so the only difference measured is the tracepoint itself.
//
// Each side defines three noinline functions with the payload of sched_wake
// (uint32_t tid, uint16_t cpu): empty_call() (no tracepoint: the loop and call
// overhead), disabled_call() and enabled_call(); and set_enabled(), which turns
// its tracepoint on or off where that is a flag the program owns.
//   PROG count N       each function N times (for callgrind's per-function counts)
//   PROG time N R      R rounds of N calls of each; one JSON line of ns per call per round
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void empty_call(uint32_t tid, uint16_t cpu);
void disabled_call(uint32_t tid, uint16_t cpu);
void enabled_call(uint32_t tid, uint16_t cpu);
void set_enabled(bool on);
void setup();
unsigned long events_written();  // records the enabled loops left in the buffer (a sanity check)

static double now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

template <typename F>
static double ns_per_call(F f, unsigned long n) {
    double t0 = now_ns();
    for (unsigned long i = 0; i < n; i++) {
        f(uint32_t(i), 1);
    }
    return (now_ns() - t0) / double(n);
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s count N | time N ROUNDS\n", argv[0]);
        return 2;
    }
    unsigned long n = strtoul(argv[2], nullptr, 0);
    setup();
    if (strcmp(argv[1], "count") == 0) {
        for (unsigned long i = 0; i < n; i++) empty_call(uint32_t(i), 1);
        set_enabled(false);
        for (unsigned long i = 0; i < n; i++) disabled_call(uint32_t(i), 1);
        set_enabled(true);
        for (unsigned long i = 0; i < n; i++) enabled_call(uint32_t(i), 1);
        printf("{\"written\": %lu}\n", events_written());
        return 0;
    }
    unsigned rounds = argc > 3 ? unsigned(strtoul(argv[3], nullptr, 0)) : 5;
    // One warm-up round so page faults and the buffers' first touch are not timed.
    set_enabled(true);
    ns_per_call(enabled_call, n / 10 + 1);
    for (unsigned r = 0; r < rounds; r++) {
        double e = ns_per_call(empty_call, n);
        set_enabled(false);
        double d = ns_per_call(disabled_call, n);
        set_enabled(true);
        double on = ns_per_call(enabled_call, n);
        printf("{\"empty\": %.4f, \"disabled\": %.4f, \"enabled\": %.4f}\n", e, d, on);
    }
    printf("{\"written\": %lu}\n", events_written());
    return 0;
}
