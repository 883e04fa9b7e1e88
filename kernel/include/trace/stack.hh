// Stacks in trace records: the bounded frame-pointer walk and the writer of
// records with a stack trailer (docs/format.md "Stack trailer"; the Python half
// is osvtrace/catalog/layout.py).
//
// A record with a trailer is its tracepoint's fixed slots followed by 1..6
// continuation slots; its header's flags carry flag_stack. The trailer's first
// slot holds the depth (byte 4) and why the walk ended (byte 5); every trailer
// slot holds up to three frames at bytes 8, 16 and 24. A record without one is
// unchanged: a stack costs nothing unless it is asked for.
//
// Freestanding, like ring.hh: the walk is also unit-tested on the host
// (tests/native/stack_walk.cc) against crafted, broken stacks. The platform
// adds to trace_platform (found through ring.hh):
//   void stack_bounds(uint64_t* lo, uint64_t* hi);  // the running thread's stack
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "trace/ring.hh"

namespace trace {

constexpr uint8_t flag_stack = 0x01;       // header slot flags: a stack trailer follows
constexpr unsigned stack_max_frames = 16;  // the depth bound
constexpr unsigned stack_frames_per_slot = 3;
constexpr unsigned stack_max_slots = (stack_max_frames + stack_frames_per_slot - 1) / stack_frames_per_slot;

// Why a walk ended (the trailer's byte 5).
enum stack_end : uint8_t {
    stack_complete = 1,   // a saved frame pointer of 0: the thread's outermost frame
    stack_cut = 2,        // the depth bound: more frames existed
    stack_bad_frame = 3,  // a frame pointer outside [lo, hi) or misaligned
    stack_loop = 4,       // a frame pointer not above the previous one
};

constexpr unsigned stack_slots(unsigned depth) {
    return depth == 0 ? 1 : (depth + stack_frames_per_slot - 1) / stack_frames_per_slot;
}

// Walks the frame-pointer chain from fp (each frame: saved fp, return address)
// and stores up to `max` return addresses, innermost first. It reads only
// 16-byte frames inside [lo, hi), each strictly above the one before (stacks
// grow down, so callers' frames are higher): a smashed or looping chain stops
// the walk, never faults it, and the walk takes at most `max` steps.
inline unsigned walk_stack(uint64_t fp, uint64_t lo, uint64_t hi, uint64_t* out, unsigned max, uint8_t* end)
{
    unsigned n = 0;
    for (;;) {
        if (fp == 0) {
            *end = stack_complete;
            return n;
        }
        if ((fp & 7) != 0 || fp < lo || hi < 16 || fp > hi - 16) {
            *end = stack_bad_frame;
            return n;
        }
        if (n == max) {
            *end = stack_cut;
            return n;
        }
        const uint64_t* f = reinterpret_cast<const uint64_t*>(fp);
        const uint64_t next = f[0];
        const uint64_t ret = f[1];
        if (ret == 0) {  // a frame that says it is the last (nothing called it)
            *end = stack_complete;
            return n;
        }
        out[n++] = ret;
        if (next != 0 && next <= fp) {
            *end = stack_loop;
            return n;
        }
        fp = next;
    }
}

// Writes a record of `nfixed` fixed slots (payload: header_payload + (nfixed-1)
// * cont_payload bytes) plus the trailer for frames[0..depth), following the
// commit protocol (ring.hh). Interrupts must be off.
inline void write_stacked(ring* r, uint16_t id, unsigned nfixed, const void* payload, const uint64_t* frames,
                          unsigned depth, uint8_t end)
{
    const unsigned n = nfixed + stack_slots(depth);
    const uint64_t i = reserve_record(r, n);
    if (i == ~uint64_t(0)) {
        return;
    }
    write_fixed(r, i, id, n, flag_stack, nfixed, payload);
    header_slot* slots = r->slots();
    for (unsigned k = nfixed, f = 0; k < n; k++) {
        uint64_t* d = reinterpret_cast<uint64_t*>(slots + ((i + k) & r->mask));
        // id_cont, index, flags 0; in the first trailer slot also depth and end (bytes 4, 5)
        uint64_t w0 = uint64_t(id_cont) | (uint64_t(k) << 16);
        if (k == nfixed) {
            w0 |= (uint64_t(depth) << 32) | (uint64_t(end) << 40);
        }
        d[0] = w0;
        for (unsigned j = 1; j <= stack_frames_per_slot; j++, f++) {
            d[j] = f < depth ? frames[f] : 0;
        }
    }
    commit(r, i + n);
}

// A record with the stack that starts at frame pointer fp: the walk runs with
// interrupts on (it only reads this thread's own stack), the write with them off.
inline void emit_stack_from(uint16_t id, unsigned nfixed, const void* payload, uint64_t fp)
{
    uint64_t lo = 0, hi = 0;
    trace_platform::stack_bounds(&lo, &hi);
    uint64_t frames[stack_max_frames];
    uint8_t end = stack_complete;
    const unsigned depth = walk_stack(fp, lo, hi, frames, stack_max_frames, &end);
    uint64_t irq = trace_platform::irq_save();
    ring* r = trace_platform::this_cpu_ring();
    if (__builtin_expect(r != nullptr, 1)) {
        write_stacked(r, id, nfixed, payload, frames, depth, end);
    }
    trace_platform::irq_restore(irq);
}

// A record with the stack of whoever called this: out of line, so that its own
// frame's return address is the first frame, inside the function that hit the
// tracepoint (the generated emitters are inlined into it).
__attribute__((noinline)) inline void emit_stack_here(uint16_t id, unsigned nfixed, const void* payload)
{
    emit_stack_from(id, nfixed, payload, reinterpret_cast<uint64_t>(__builtin_frame_address(0)));
    asm volatile("" : : : "memory");  // no tail call: this frame must stay while the walk reads it
}

}  // namespace trace
