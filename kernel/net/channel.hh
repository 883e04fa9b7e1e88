// Van Jacobson net channels: a received packet is classified once, early,
// by the NIC's receive thread, and pushed into the channel of the socket
// that will consume it; all protocol work (checksums, parsing the payload,
// building the reply) then happens in the consuming thread, on its CPU.
//
// A channel is a single-producer single-consumer ring of packet buffers
// (lib/spsc_ring.hh): the producer is the receive thread, the consumer the
// one thread that reads the socket. Neither side ever waits for the other
// except the consumer for data: a full channel drops (and counts, and traces)
// instead of blocking the receive thread, and an empty one puts the consumer
// to sleep on an event the producer signals, which wakes the consumer on its
// own CPU.
#pragma once

#include <atomic>
#include <stdint.h>

#include "core/event.hh"
#include "lib/spsc_ring.hh"
#include "net/pbuf.hh"

namespace net {

class channel {
public:
    static constexpr uint32_t capacity = 256;

    // Producer (the receive thread). Queues p and wakes the consumer, or,
    // when the channel is full, frees p and counts the drop. Traces
    // net_channel_push or net_channel_drop. Returns whether p was queued.
    bool push(pbuf* p);

    // Consumer. The next packet, or nullptr if there is none right now.
    // Traces net_channel_pop.
    pbuf* pop();

    // Consumer. Blocks until a packet arrives (returned) or the channel is
    // closed (nullptr, once what was queued has been freed).
    pbuf* wait_pop();

    // Any thread: makes the consumer's wait_pop return nullptr.
    void close();
    bool closed() const { return closed_.load(std::memory_order_acquire); }

    uint64_t drops() const { return drops_.load(std::memory_order_relaxed); }
    uint32_t depth() const { return ring_.size(); }

private:
    lockfree::spsc_ring<pbuf*, capacity> ring_;
    event ready_;  // the consumer waits on it; the producer and close() signal it
    std::atomic<bool> closed_{false};
    std::atomic<uint64_t> drops_{0};  // written by the producer only
};

}  // namespace net
