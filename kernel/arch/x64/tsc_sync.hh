// Measuring an AP's TSC against the boot CPU's at bring-up, so trace
// timestamps from different CPUs line up: the offset is stored in
// osvtrace_control.tsc_offset[cpu] and the decoder subtracts it.
//
// The boot CPU stamps t0, asks the AP for its TSC ta, and stamps t1 when the
// answer arrives; ta - (t0 + t1) / 2 is the offset, to within half the round
// trip. Of several rounds (4 to 16) the one with the shortest round trip wins.
// When zero is within that error the offset is taken as zero (the TSCs are
// synchronised as far as can be told). Both
// sides wait for each other with pause loops: a boot-time rendezvous of two
// CPUs, not a lock (and `pause` lets single-threaded TCG switch vCPUs).
#pragma once

#include <stdint.h>

namespace tsc_sync {

struct result {
    int64_t offset;  // AP TSC minus boot CPU TSC
    uint64_t rtt;    // round trip of the sample used (TSC ticks)
    unsigned rounds; // answered rounds
};

// Boot CPU side, before starting the AP (the previous one has finished).
void reset();

// Boot CPU side; false if the AP stopped answering (timeout_ticks per round).
// Stops early, after a few rounds, once a round trip is at most good_rtt, or
// once timeout_ticks / 50 have passed (a loaded host: the best sample so far).
bool measure(result* r, uint64_t timeout_ticks, uint64_t good_rtt);

// AP side: answers until the boot CPU is done.
void answer();

}  // namespace tsc_sync
