// Per-CPU trace rings: the record layout and the writer's fast path.
//
// This header is the C++ half of the contract in docs/format.md; the Python
// half is osvtrace/layout.py. It is freestanding and also builds on the host
// (tests/native/), where the writer is unit-tested and its instructions are
// counted. The platform supplies, in "trace_platform.hh" found on the include
// path, a namespace trace_platform with:
//   uint64_t irq_save();  void irq_restore(uint64_t);   // no interrupts inside
//   trace_ring* this_cpu_ring();                          // may be nullptr early
//   uint32_t current_tid();
//   uint64_t timestamp();                                 // TSC ticks
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace trace {

constexpr unsigned slot_size = 32;
constexpr unsigned header_payload = 16;  // payload bytes in a record's first slot
constexpr unsigned cont_payload = 28;    // payload bytes in each continuation slot
constexpr uint16_t id_empty = 0;         // a slot never written
constexpr uint16_t id_cont = 0xffff;     // a continuation slot
constexpr uint64_t ring_magic = 0x474e495254565f4fULL;  // "O_VTRING" little-endian

// NOTE: every slot starts with the same 4 bytes (id, nslots/index, flags), so
// a reader tells header slots from continuation slots without walking records.
struct header_slot {
    uint16_t id;
    uint8_t nslots;  // slots in this record, header included
    uint8_t flags;   // reserved, 0
    uint32_t tid;
    uint64_t tsc;
    uint8_t payload[header_payload];
};

struct cont_slot {
    uint16_t id;     // id_cont
    uint8_t index;   // 1 .. nslots-1
    uint8_t flags;   // reserved, 0
    uint8_t payload[cont_payload];
};

static_assert(sizeof(header_slot) == slot_size, "header slot size");
static_assert(sizeof(cont_slot) == slot_size, "continuation slot size");
static_assert(offsetof(header_slot, tsc) == 8, "tsc offset");
static_assert(offsetof(header_slot, payload) == 16, "payload offset");
static_assert(offsetof(cont_slot, payload) == 4, "continuation payload offset");

enum class ring_mode : uint32_t {
    overwrite = 0,  // flight recorder: the oldest records are overwritten
    stream = 1,     // a reader consumes; a full ring drops and counts
};

// One ring per CPU. Indices are absolute slot counts since boot (never wrap
// in practice); the slot for index i is slots[i & mask].
//
// Commit protocol (single writer: the owning CPU, interrupts off):
//   1. head = i + n      (reserve; readers learn these slots may change)
//   2. write the n slots
//   3. committed = i + n (release store: the slots below are complete)
// A reader copies slots [from, committed) then re-reads head: any slot with
// index < head - nslots may have been overwritten during the copy and is
// discarded (overwrite mode). In stream mode the writer never passes tail.
struct alignas(64) ring {
    uint64_t magic;
    uint32_t cpu;
    ring_mode mode;
    uint64_t nslots;  // a power of two
    uint64_t mask;    // nslots - 1
    uint64_t slots_addr;  // address of the slot array (virtual == physical)
    uint64_t reserved0[3];

    // Written by the owning CPU only.
    alignas(64) volatile uint64_t head;
    volatile uint64_t committed;
    volatile uint64_t lost;          // records dropped because the ring was full
    volatile uint64_t pending_lost;  // dropped, not yet reported by trace_lost
    uint64_t reserved1[4];

    // Written by the reader only (stream mode): slots below tail are consumed.
    alignas(64) volatile uint64_t tail;
    uint64_t reserved2[7];

    header_slot* slots() { return reinterpret_cast<header_slot*>(slots_addr); }
};

static_assert(sizeof(ring) == 192, "ring size");
static_assert(offsetof(ring, head) == 64, "ring head offset");
static_assert(offsetof(ring, committed) == 72, "ring committed offset");
static_assert(offsetof(ring, lost) == 80, "ring lost offset");
static_assert(offsetof(ring, tail) == 128, "ring tail offset");

// Slots needed for a payload of `bytes`.
constexpr unsigned slots_for(unsigned bytes) {
    return bytes <= header_payload ? 1 : 1 + (bytes - header_payload + cont_payload - 1) / cont_payload;
}

constexpr uint16_t id_trace_lost = 1;  // tracepoints/trace.toml; checked by the generated header

// Reserve n slots on ring r; returns the absolute index or ~0 when the record
// must be dropped (stream mode, ring full). Interrupts must be off.
inline uint64_t reserve(ring* r, unsigned n) {
    uint64_t h = r->head;
    if (r->mode == ring_mode::stream) {
        uint64_t t = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        if (__builtin_expect(h + n - t > r->nslots, 0)) {
            r->lost = r->lost + 1;
            r->pending_lost = r->pending_lost + 1;
            return ~uint64_t(0);
        }
    }
    r->head = h + n;
    // Keep the slot stores below after the head store (x86 keeps store order;
    // this stops the compiler from moving them).
    __atomic_signal_fence(__ATOMIC_RELEASE);
    return h;
}

inline void commit(ring* r, uint64_t end) {
    __atomic_store_n(&r->committed, end, __ATOMIC_RELEASE);
}

// Before the first record after a drop, place a trace_lost record on the
// timeline. Cold: only runs after the ring overflowed in stream mode. Returns
// false when the ring is still full (the count stays pending): the caller must
// then drop its record too, even if the reader frees space a moment later, or
// that record would reach the timeline before the announcement of the drops
// that came before it.
__attribute__((noinline, cold)) inline bool report_lost(ring* r, uint32_t tid, uint64_t tsc) {
    uint64_t i = r->head;
    if (r->mode == ring_mode::stream &&
        i + 1 - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) > r->nslots) {
        return false;
    }
    r->head = i + 1;
    __atomic_signal_fence(__ATOMIC_RELEASE);
    header_slot* s = r->slots() + (i & r->mask);
    s->id = id_trace_lost;
    s->nslots = 1;
    s->flags = 0;
    s->tid = tid;
    s->tsc = tsc;
    uint64_t count = r->pending_lost;
    __builtin_memcpy(s->payload, &count, sizeof count);
    __builtin_memset(s->payload + sizeof count, 0, header_payload - sizeof count);
    r->pending_lost = 0;
    commit(r, i + 1);
    return true;
}

}  // namespace trace

#include "trace_platform.hh"

namespace trace {

// Write a one-slot record at absolute index i, following the commit protocol.
__attribute__((always_inline)) inline void write1(ring* r, uint64_t i, uint16_t id, uint64_t p0, uint64_t p1) {
    r->head = i + 1;
    __atomic_signal_fence(__ATOMIC_RELEASE);
    uint64_t* d = reinterpret_cast<uint64_t*>(r->slots() + (i & r->mask));
    d[0] = uint64_t(id) | (uint64_t(1) << 16) | (uint64_t(trace_platform::current_tid()) << 32);
    d[1] = trace_platform::timestamp();
    d[2] = p0;
    d[3] = p1;
    commit(r, i + 1);
}

// The stream-mode writer for one-slot records: reports earlier drops, respects the
// reader's tail and counts what does not fit. Out of line, so the flight-recorder
// path below stays short (in overwrite mode nothing is ever dropped).
__attribute__((noinline)) inline void emit1_stream(ring* r, uint16_t id, uint64_t p0, uint64_t p1) {
    const bool unannounced =
        r->pending_lost != 0 && !report_lost(r, trace_platform::current_tid(), trace_platform::timestamp());
    uint64_t i = r->head;
    // Still full when announcing: dropped too, so nothing gets ahead of the announcement.
    if (unannounced || i + 1 - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) > r->nslots) {
        r->lost = r->lost + 1;
        r->pending_lost = r->pending_lost + 1;
        return;
    }
    write1(r, i, id, p0, p1);
}

// The fast path for records that fit one slot: the 16 payload bytes arrive as two
// words already packed in registers (the generated emitters pack them), so an
// enabled tracepoint is a few loads and five stores.
inline void emit1(uint16_t id, uint64_t p0, uint64_t p1) {
    uint64_t irq = trace_platform::irq_save();
    ring* r = trace_platform::this_cpu_ring();
    if (__builtin_expect(r != nullptr, 1)) {
        if (__builtin_expect(r->mode != ring_mode::overwrite, 0)) {
            emit1_stream(r, id, p0, p1);
        } else {
            write1(r, r->head, id, p0, p1);
        }
    }
    trace_platform::irq_restore(irq);
}

// One-slot records whose payload is built in memory (string arguments).
inline void emit1(uint16_t id, const void* payload) {
    uint64_t p[2];
    __builtin_memcpy(p, payload, sizeof p);
    emit1(id, p[0], p[1]);
}

// Reserves n slots for a record written slot by slot, announcing earlier drops first
// (report_lost); ~0 when the record must be dropped. Interrupts must be off.
inline uint64_t reserve_record(ring* r, unsigned n)
{
    if (__builtin_expect(r->pending_lost != 0, 0) &&
        !report_lost(r, trace_platform::current_tid(), trace_platform::timestamp())) {
        r->lost = r->lost + 1;  // still full: dropped too, so nothing gets ahead of the announcement
        r->pending_lost = r->pending_lost + 1;
        return ~uint64_t(0);
    }
    return reserve(r, n);
}

// Writes the header slot of a record of n slots at index i, and its continuation slots
// 1..nfixed-1 from the payload (header_payload + (nfixed-1)*cont_payload bytes). A
// record with a stack trailer (trace/stack.hh) writes its remaining slots itself.
inline void write_fixed(ring* r, uint64_t i, uint16_t id, unsigned n, uint8_t flags, unsigned nfixed,
                        const void* payload)
{
    const uint8_t* p = static_cast<const uint8_t*>(payload);
    header_slot* slots = r->slots();
    header_slot* s = slots + (i & r->mask);
    s->id = id;
    s->nslots = uint8_t(n);
    s->flags = flags;
    s->tid = trace_platform::current_tid();
    s->tsc = trace_platform::timestamp();
    __builtin_memcpy(s->payload, p, header_payload);
    p += header_payload;
    for (unsigned k = 1; k < nfixed; k++) {
        cont_slot* c = reinterpret_cast<cont_slot*>(slots + ((i + k) & r->mask));
        c->id = id_cont;
        c->index = uint8_t(k);
        c->flags = 0;
        __builtin_memcpy(c->payload, p, cont_payload);
        p += cont_payload;
    }
}

// Records spanning n slots: the payload is header_payload + (n-1)*cont_payload
// bytes, split over the header slot and the continuation slots.
inline void emitn(uint16_t id, unsigned n, const void* payload)
{
    uint64_t irq = trace_platform::irq_save();
    ring* r = trace_platform::this_cpu_ring();
    if (__builtin_expect(r != nullptr, 1)) {
        uint64_t i = reserve_record(r, n);
        if (i != ~uint64_t(0)) {
            write_fixed(r, i, id, n, 0, n, payload);
            commit(r, i + n);
        }
    }
    trace_platform::irq_restore(irq);
}

}  // namespace trace
