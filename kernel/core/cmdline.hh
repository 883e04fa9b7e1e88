// The kernel command line (hvm_start_info.cmdline_paddr, i.e. QEMU -append):
//
//   app=NAME ARGS...      the application and its argv (argv[0] = NAME)
//   trace=GLOB,GLOB       enable tracepoints (anchored shell globs)
//   tracebt=GLOB,GLOB     their records carry their stack (a bounded frame-pointer walk)
//   sampler=HZ            a timer sampler per CPU: cpu_sample records (1..10000 Hz)
//   tracebuf=SIZE         per-CPU ring size: bytes, or with K/M/G (default 4M)
//   tracemode=overwrite|stream                              (default overwrite)
//   idle_poll=US          an idle CPU polls its wake-up queue this long before hlt (default 50; 0: off)
//   --                    everything after it goes to the app verbatim
//
// Kernel options may appear before or after the app's arguments (the tools
// append them after); a token after app= that is not a kernel option is an
// app argument. Double quotes group words into one argument. Tokens
// "virtio_mmio.device=..." (which QEMU's microvm appends on its own) are
// kernel options kept for the virtio-mmio driver.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "trace/ring.hh"

namespace cmdline {

constexpr size_t max_len = 4096;
constexpr int max_args = 64;
constexpr int max_virtio_mmio = 16;

struct options {
    const char* app = nullptr;
    int argc = 0;
    char* argv[max_args + 1] = {};  // argv[0] = app name, argv[argc] = nullptr
    const char* trace = nullptr;    // the raw glob list, or nullptr
    const char* tracebt = nullptr;  // the raw glob list of tracepoints taking stacks, or nullptr
    uint32_t sampler_hz = 0;        // 0: no sampler
    uint64_t tracebuf = 0;          // requested bytes (0: default)
    trace::ring_mode tracemode = trace::ring_mode::overwrite;
    int64_t idle_poll_us = -1;      // -1: the scheduler's default
    const char* virtio_mmio[max_virtio_mmio] = {};
    int n_virtio_mmio = 0;
};

// Copies the command line into kernel memory (it is published in the
// control block) and returns the copy.
const char* save(uint64_t paddr);

// Parses the saved command line. On a bad value, prints what is wrong and
// returns false.
bool parse(options* o);

}  // namespace cmdline
