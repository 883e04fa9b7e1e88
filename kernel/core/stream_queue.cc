#include "core/stream_queue.hh"

namespace trace_stream {
namespace {

namespace ts = trace::stream;

// Padding after payloads that are not a multiple of 32 bytes: a piece of its
// own, so no buffer needs room for it.
const uint8_t zeros[32] = {};

}  // namespace

bool stream_queue::init(const trace_port::ops* port, trace::ring* const* rings, unsigned ncpus)
{
    port_ = port;
    ncpus_ = ncpus;
    for (unsigned i = 0; i < ncpus; i++) {
        cpus_[i] = {rings[i], nullptr, nullptr};
    }
    // Every frame takes at least one descriptor: more frames could never be in flight.
    unsigned n = port->size();
    auto* pool = new frame[n];
    if (!pool) {
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        release(&pool[i]);
    }
    return true;
}

stream_queue::frame* stream_queue::alloc()
{
    frame* f = free_;
    if (f) {
        free_ = f->next;
        f->next = nullptr;
        f->done = false;
        f->busy = nullptr;
    }
    return f;
}

void stream_queue::release(frame* f)
{
    f->next = free_;
    free_ = f;
}

bool stream_queue::room_for_data() const { return free_ && port_->free_descriptors() >= 3; }

bool stream_queue::submit(frame* f, const trace_port::piece* payload, unsigned npieces)
{
    trace_port::piece out[3] = {{&f->hdr, sizeof f->hdr}};
    for (unsigned i = 0; i < npieces && i < 2; i++) {
        out[1 + i] = payload[i];
    }
    if (!port_->add(out, 1 + npieces, f)) {
        return false;
    }
    in_flight_++;
    port_->kick();
    return true;
}

void stream_queue::enqueue_data(unsigned cpu, frame* f)
{
    cpu_fifo& c = cpus_[cpu];
    if (c.tail) {
        c.tail->next = f;
    } else {
        c.head = f;
    }
    c.tail = f;
}

void stream_queue::complete_data(unsigned cpu)
{
    cpu_fifo& c = cpus_[cpu];
    while (c.head && c.head->done) {
        frame* f = c.head;
        c.head = f->next;
        if (!c.head) {
            c.tail = nullptr;
        }
        // NOTE: only now may the writer reuse these slots.
        __atomic_store_n(&c.ring->tail, f->end, __ATOMIC_RELEASE);
        release(f);
    }
}

bool stream_queue::send_slots(unsigned cpu, uint64_t from, uint64_t end, uint64_t lost)
{
    frame* f = alloc();
    if (!f) {
        return false;
    }
    trace::ring* r = cpus_[cpu].ring;
    f->hdr = {ts::frame_magic, ts::frame_data, 0, uint16_t(cpu), uint32_t(end - from), 0, from, lost};
    f->end = end;
    trace_port::piece p[2];
    unsigned np = 0;
    while (from < end && np < 2) {  // one piece, or two where the range wraps
        uint64_t pos = from & r->mask;
        uint64_t len = end - from < r->nslots - pos ? end - from : r->nslots - pos;
        p[np++] = {r->slots() + pos, uint32_t(len * trace::slot_size)};
        from += len;
    }
    if (!submit(f, p, np)) {
        release(f);
        return false;
    }
    enqueue_data(cpu, f);
    return true;
}

void stream_queue::send_lost(unsigned cpu, uint64_t seq, uint64_t lost)
{
    frame* f;
    while (!(f = alloc())) {
        wait();
    }
    f->hdr = {ts::frame_magic, ts::frame_data, 0, uint16_t(cpu), 0, 0, seq, lost};
    f->end = seq;
    while (!submit(f, nullptr, 0)) {
        wait();
    }
    enqueue_data(cpu, f);
}

void stream_queue::send_blob(uint8_t type, const void* buf, uint32_t len, bool* busy)
{
    frame* f;
    while (!(f = alloc())) {
        wait();
    }
    f->hdr = {ts::frame_magic, type, 0, 0, len, 0, 0, 0};
    trace_port::piece p[2];
    unsigned np = 0;
    if (len) {
        p[np++] = {buf, len};
    }
    if (uint32_t pad = -len & 31u) {
        p[np++] = {zeros, pad};
    }
    if (busy) {
        __atomic_store_n(busy, true, __ATOMIC_RELEASE);
    }
    f->busy = busy;
    while (!submit(f, p, np)) {
        wait();
    }
}

void stream_queue::reclaim()
{
    void* tok;
    while (port_->get_used(&tok)) {
        auto* f = static_cast<frame*>(tok);
        in_flight_--;
        if (f->hdr.type == ts::frame_data) {
            f->done = true;
            complete_data(f->hdr.cpu);
        } else {
            if (f->busy) {
                __atomic_store_n(f->busy, false, __ATOMIC_RELEASE);
            }
            release(f);
        }
    }
}

void stream_queue::wait()
{
    port_->wait_used();
    reclaim();
}

}  // namespace trace_stream
