// A bounded lock-free ring for exactly one producer and one consumer: the
// storage of a net channel (net/channel.hh).
//
// Each side owns one index and only reads the other's: the producer writes
// the slot, then publishes head with a release store; the consumer reads head
// with an acquire load, takes the slot, then publishes tail with a release
// store (so the producer never overwrites a slot still being read). No CAS,
// no fences beyond those: on x86 both publishes are plain stores.
//
// NOTE: "one producer, one consumer" is the caller's invariant. A net
// channel's producer is the NIC's receive thread, its consumer the thread
// that owns the socket. Indices are free-running 32-bit counters, so the
// capacity N must be a power of two (head - tail is right across a wrap).
//
// Freestanding: std::atomic only, so it builds in the kernel and on the host
// (tests/native/spsc_host.cc runs it under ThreadSanitizer).
#pragma once

#include <atomic>
#include <stddef.h>
#include <stdint.h>

namespace lockfree {

template <class T, uint32_t N>
class spsc_ring {
    static_assert(N >= 2 && (N & (N - 1)) == 0, "capacity must be a power of two");

public:
    static constexpr uint32_t capacity = N;

    // Producer only. False (nothing stored) when full. `depth` gets the
    // number of items in the ring after the push, as the producer sees it
    // (the consumer may have taken some meanwhile: an upper bound).
    bool push(const T& v, uint32_t* depth = nullptr)
    {
        uint32_t h = head_.load(std::memory_order_relaxed);
        uint32_t t = tail_.load(std::memory_order_acquire);
        if (h - t >= N) {
            if (depth) {
                *depth = h - t;
            }
            return false;
        }
        slots_[h & (N - 1)] = v;
        head_.store(h + 1, std::memory_order_release);
        if (depth) {
            *depth = h + 1 - t;
        }
        return true;
    }

    // Consumer only. False when empty. `depth` gets the items left after the
    // pop as the consumer sees them (a lower bound: more may be arriving).
    bool pop(T* out, uint32_t* depth = nullptr)
    {
        uint32_t t = tail_.load(std::memory_order_relaxed);
        uint32_t h = head_.load(std::memory_order_acquire);
        if (h == t) {
            return false;
        }
        *out = slots_[t & (N - 1)];
        tail_.store(t + 1, std::memory_order_release);
        if (depth) {
            *depth = h - t - 1;
        }
        return true;
    }

    // Either side; exact only for the consumer (empty) or producer (full).
    bool empty() const
    {
        return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire);
    }
    uint32_t size() const
    {
        return head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire);
    }

private:
    // Head and tail on their own cache lines: the two sides write one each,
    // and sharing a line would bounce it between the two CPUs on every packet.
    alignas(64) std::atomic<uint32_t> head_{0};  // written by the producer
    alignas(64) std::atomic<uint32_t> tail_{0};  // written by the consumer
    alignas(64) T slots_[N];
};

}  // namespace lockfree
