// The trace port's transmit queue as the drain uses it: frames (header +
// payload pieces) in flight to the device, and the rings' tails moved as the
// device hands data frames back (core/trace_stream.cc decides what to send).
//
// NOTE: one owner, the drain thread; nothing here is touched by anyone else.
// A data frame's payload is the ring's own memory, so a ring's `tail` may
// pass a frame's slots only once the device has returned it (and frames of one
// CPU come back in the order they went out: the tail only moves forward over
// a prefix of returned frames).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/trace_port.hh"
#include "trace/ring.hh"
#include "trace/stream.hh"

namespace trace_stream {

class stream_queue {
public:
    // port: the device, connected (its transmit queue is ours from now on).
    bool init(const trace_port::ops* port, trace::ring* const* rings, unsigned ncpus);

    // A data frame of CPU cpu's ring slots [from, end) (at most two pieces).
    // False, with nothing queued, when no frame or descriptors are free.
    bool send_slots(unsigned cpu, uint64_t from, uint64_t end, uint64_t lost);
    // A data frame without slots (the final lost counter); waits for room.
    void send_lost(unsigned cpu, uint64_t seq, uint64_t lost);
    // A frame of `type` with `len` payload bytes at buf, zero-padded to 32;
    // waits for room. *busy is true until the device has finished with buf.
    void send_blob(uint8_t type, const void* buf, uint32_t len, bool* busy);

    // Takes back everything the device has finished with.
    void reclaim();
    // Sleeps until the device returns at least one buffer (something must be
    // in flight), then reclaims.
    void wait();

    bool room_for_data() const;
    unsigned in_flight() const { return in_flight_; }

private:
    struct frame {
        trace::stream::frame_header hdr;  // device-visible: the first piece of the chain
        frame* next;    // the CPU's in-flight list, or the free list
        uint64_t end;   // data: ring index after its last slot
        bool done;      // data: returned by the device
        bool* busy;     // others: the payload buffer to release
    };
    struct cpu_fifo {
        trace::ring* ring;
        frame* head;  // oldest in flight
        frame* tail;
    };

    frame* alloc();
    void release(frame* f);
    bool submit(frame* f, const trace_port::piece* payload, unsigned npieces);
    void enqueue_data(unsigned cpu, frame* f);
    void complete_data(unsigned cpu);

    const trace_port::ops* port_ = nullptr;
    frame* free_ = nullptr;
    unsigned in_flight_ = 0;
    unsigned ncpus_ = 0;
    cpu_fifo cpus_[trace::max_cpus] = {};
};

}  // namespace trace_stream
