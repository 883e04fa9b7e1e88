// The stream protocol: what the drain thread sends on the virtio-serial port
// org.osvtrace.trace, and what osvtrace/stream.py parses (docs/format.md,
// "Stream protocol"; tests/test_codegen.py checks these layouts against
// Python). Little-endian, one byte stream of frames:
//
//   frame header (32 bytes) | payload, padded with zeros to a multiple of 32
//
// Data frames carry a range of one CPU's ring slots exactly as the ring holds
// them (whole records: the drain cuts only at record boundaries), so the host
// writes each one as an .osvt chunk without looking inside. The padding keeps
// every slot at a 32-byte offset of the stream.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "trace/control.hh"

namespace trace::stream {

constexpr uint32_t frame_magic = 0x4d525453;  // "STRM" little-endian
constexpr uint32_t protocol_version = 1;
constexpr char port_name[] = "org.osvtrace.trace";
constexpr char ctl_port_name[] = "org.osvtrace.ctl";

enum frame_type : uint8_t {
    frame_meta = 1,     // first frame: clock, CPUs, command line, build id, enable flags
    frame_data = 2,     // `count` slots of CPU `cpu`, the first being slot number `seq`
    frame_threads = 3,  // thread names: `count` bytes of thread_entry records
    frame_end = 4,      // last frame: why the stream ended (end_payload)
    frame_ack = 5,      // reply to a command received on the ctl port (ack_payload)
};

struct frame_header {
    uint32_t magic;
    uint8_t type;
    uint8_t flags;     // 0
    uint16_t cpu;      // data frames; 0 otherwise
    uint32_t count;    // data: slots; others: payload bytes before padding
    uint32_t reserved; // 0
    uint64_t seq;      // data: absolute ring index of the first slot
    uint64_t lost;     // data: the ring's `lost` counter when the frame was cut
};
static_assert(sizeof(frame_header) == 32, "frame header size");
static_assert(offsetof(frame_header, count) == 8, "frame count offset");
static_assert(offsetof(frame_header, seq) == 16, "frame seq offset");
static_assert(offsetof(frame_header, lost) == 24, "frame lost offset");

// Followed by cmdline_len bytes of command line, build_id_len bytes of build
// id (hex) and enabled_len bytes of enable flags (index = tracepoint id).
struct meta_payload {
    uint32_t version;      // protocol_version
    uint32_t ncpus;
    uint64_t tsc_hz;
    uint64_t tsc_boot;     // TSC at kernel entry: time zero
    uint32_t tp_max;
    uint32_t slot_size;    // 32
    uint64_t ring_slots;   // slots per CPU ring
    uint32_t cmdline_len;
    uint32_t build_id_len;
    uint32_t enabled_len;
    uint32_t drain_period_us;
    uint64_t tsc_start;    // TSC when the drain started
    int64_t tsc_offset[max_cpus];  // as in the control block
};
static_assert(sizeof(meta_payload) == 64 + 8 * max_cpus, "meta payload size");
static_assert(offsetof(meta_payload, ring_slots) == 32, "meta ring_slots offset");
static_assert(offsetof(meta_payload, tsc_offset) == 64, "meta tsc_offset offset");

enum end_reason : uint32_t {
    end_app_exit = 0,  // the app returned `status`
    end_stopped = 1,   // a `stop` command on the ctl port
};

// Before the end frame, the drain sends one data frame per CPU (possibly with
// no slots) carrying the final lost counters.
struct end_payload {
    int32_t status;  // the app's exit status (end_app_exit)
    uint32_t reason; // end_reason
    uint64_t tsc;    // when the stream ended
};
static_assert(sizeof(end_payload) == 16, "end payload size");

// Followed by a NUL-terminated message (what was done, or what was wrong).
struct ack_payload {
    uint32_t id;      // the command's id, as the host sent it
    int32_t result;   // >= 0: done (for enable/disable: tracepoints matched); < 0: refused
    uint64_t tsc;     // when the guest applied it
};
static_assert(sizeof(ack_payload) == 16, "ack payload size");

}  // namespace trace::stream
