// The drain (see trace_stream.hh): what to send when. The device side of it,
// frames in flight and ring tails, is core/stream_queue.cc.
#include "core/trace_stream.hh"

#include "core/console.hh"
#include "core/event.hh"
#include "core/percpu.hh"
#include "core/stream_queue.hh"
#include "core/thread.hh"
#include "core/trace.hh"
#include "core/trace_port.hh"
#include "generated/tracepoints.hh"
#include "lib/string.hh"
#include "trace/control.hh"
#include "trace/stream.hh"
#include "tsc.hh"

namespace trace_stream {
namespace {

namespace ts = trace::stream;

constexpr uint64_t min_frame_slots = (64 << 10) / trace::slot_size;    // batch at least this much ...
constexpr uint64_t max_frame_slots = (256 << 10) / trace::slot_size;   // ... and at most this much
constexpr uint64_t connect_timeout_ms = 3000;
constexpr unsigned max_acks = 16;
constexpr unsigned ack_msg_len = 112;
constexpr size_t meta_extra = 4096 + 128 + trace::tp_max + 1;

struct cpu_state {
    trace::ring* ring;
    uint64_t sent;       // slots below this are queued (or consumed)
    uint64_t last_send;  // TSC of the last data frame
};

struct ack_rec {
    ts::ack_payload p;
    char msg[ack_msg_len];
};
static_assert(sizeof(ack_rec) % 32 == 0, "ack records are whole 32-byte units");

struct state {
    stream_queue q;
    unsigned ncpus;
    cpu_state cpus[trace::max_cpus];

    uint8_t meta_buf[sizeof(ts::meta_payload) + meta_extra];
    bool meta_busy;
    trace::thread_entry names_buf[threads_max];
    bool names_busy;
    trace::thread_entry names_sent[threads_max];
    uint32_t names_gen_seen;
    ack_rec acks[max_acks];
    bool ack_busy[max_acks];
    ack_rec own_ack;  // the drain's own replies (flush, stop)
    bool own_ack_busy;
    ts::end_payload end_buf;
    bool end_busy;

    // From other threads: the ctl handler (acks, flush, stop) and finish().
    uint32_t ack_head;  // written by the producer (the virtio-console service thread)
    uint32_t ack_tail;  // written by the drain
    uint32_t flush_id;  // nonzero: a flush to acknowledge
    uint32_t stop_id;   // nonzero: a stop to perform and acknowledge
    bool finish_req;
    int finish_status;
    event started;      // the meta frame is queued
    event finished;
    bool stopped;       // the end frame is out: the drain only reclaims
};

state* st;
thread* drain;

uint64_t period_ticks() { return tsc::from_ns(period_us * 1000); }

// ------------------------------------------------------------ frames

void send_meta()
{
    auto* m = reinterpret_cast<ts::meta_payload*>(st->meta_buf);
    const trace::control& c = osvtrace_control;
    memset(m, 0, sizeof *m);
    m->version = ts::protocol_version;
    m->ncpus = st->ncpus;
    m->tsc_hz = c.tsc_hz;
    m->tsc_boot = c.tsc_boot;
    m->tp_max = c.tp_max;
    m->slot_size = trace::slot_size;
    m->ring_slots = st->cpus[0].ring->nslots;
    m->drain_period_us = period_us;
    m->tsc_start = tsc::now();
    for (unsigned i = 0; i < st->ncpus; i++) {
        m->tsc_offset[i] = c.tsc_offset[i];
    }
    uint8_t* p = st->meta_buf + sizeof *m;
    auto* cmdline = reinterpret_cast<const char*>(c.cmdline_addr);
    auto* build_id = reinterpret_cast<const char*>(c.build_id_addr);
    m->cmdline_len = uint32_t(strnlen(cmdline, 4096));
    m->build_id_len = uint32_t(strnlen(build_id, 128));
    m->enabled_len = trace::tp_max + 1;
    memcpy(p, cmdline, m->cmdline_len);
    p += m->cmdline_len;
    memcpy(p, build_id, m->build_id_len);
    p += m->build_id_len;
    for (unsigned i = 0; i <= trace::tp_max; i++) {
        *p++ = trace::enabled[i];
    }
    st->q.send_blob(ts::frame_meta, st->meta_buf, uint32_t(p - st->meta_buf), &st->meta_busy);
}

// Names of threads created since the last look (the runtime's thread table,
// compared with what was sent; only scanned when a thread was created).
void send_names()
{
    uint32_t gen = trace_rt::names_generation();
    if (gen == st->names_gen_seen || st->names_busy) {
        return;
    }
    st->names_gen_seen = gen;
    auto* table = reinterpret_cast<const trace::thread_entry*>(osvtrace_control.threads_addr);
    unsigned n = 0;
    for (unsigned i = 1; i < threads_max; i++) {
        trace::thread_entry e;
        e.tid = __atomic_load_n(&table[i].tid, __ATOMIC_ACQUIRE);
        if (!e.tid) {
            continue;
        }
        e.flags = 0;
        memcpy(e.name, table[i].name, sizeof e.name);
        if (memcmp(&e, &st->names_sent[i], sizeof e)) {
            st->names_sent[i] = e;
            st->names_buf[n++] = e;
        }
    }
    if (n) {
        st->q.send_blob(ts::frame_threads, st->names_buf, n * uint32_t(sizeof(trace::thread_entry)), &st->names_busy);
    }
}

void send_acks()
{
    uint32_t head = __atomic_load_n(&st->ack_head, __ATOMIC_ACQUIRE);
    while (st->ack_tail != head) {
        unsigned i = st->ack_tail % max_acks;
        while (st->ack_busy[i]) {
            st->q.wait();
        }
        st->q.send_blob(ts::frame_ack, &st->acks[i], sizeof(ack_rec), &st->ack_busy[i]);
        __atomic_store_n(&st->ack_tail, st->ack_tail + 1, __ATOMIC_RELEASE);
    }
}

// A reply from the drain itself (the ring above has one producer: the ctl handler).
void send_own_ack(uint32_t id, int32_t result, const char* msg)
{
    while (st->own_ack_busy) {
        st->q.wait();
    }
    st->own_ack.p = {id, result, tsc::now()};
    memset(st->own_ack.msg, 0, sizeof st->own_ack.msg);
    strlcpy(st->own_ack.msg, msg, sizeof st->own_ack.msg);
    st->q.send_blob(ts::frame_ack, &st->own_ack, sizeof(ack_rec), &st->own_ack_busy);
}

// One data frame of CPU cpu if there is enough to send (or `all`: anything).
// Returns true if it sent a full-size frame (more may be waiting).
bool send_data(unsigned cpu, bool all)
{
    cpu_state& c = st->cpus[cpu];
    trace::ring* r = c.ring;
    uint64_t committed = __atomic_load_n(&r->committed, __ATOMIC_ACQUIRE);
    uint64_t n = committed - c.sent;
    uint64_t now = tsc::now();
    if (n == 0 || (!all && n < min_frame_slots && now - c.last_send < period_ticks())) {
        return false;
    }
    uint64_t end = committed;
    if (n > max_frame_slots) {
        // Cut at a record boundary: step back from a continuation slot to
        // its record's header slot (committed slots do not change under us).
        end = c.sent + max_frame_slots;
        const auto* s = reinterpret_cast<const trace::cont_slot*>(r->slots() + (end & r->mask));
        if (s->id == trace::id_cont) {
            end -= s->index;
        }
    }
    uint64_t from = c.sent;
    if (!st->q.send_slots(cpu, from, end, r->lost)) {
        return false;  // no room: the device still has earlier frames
    }
    c.sent = end;
    c.last_send = now;
    return end - from >= max_frame_slots - 255;  // full size (up to a record): more may wait
}

// Everything committed up to now, the lost counters, the end frame; then
// waits until the device has it all.
void end_stream(uint32_t reason, int status)
{
    for (unsigned i = 0; i < st->ncpus; i++) {
        uint64_t target = __atomic_load_n(&st->cpus[i].ring->committed, __ATOMIC_ACQUIRE);
        while (st->cpus[i].sent < target) {
            st->q.reclaim();
            uint64_t before = st->cpus[i].sent;
            send_data(i, true);
            if (st->cpus[i].sent == before) {
                st->q.wait();  // out of frames or descriptors: some are in flight
            }
        }
    }
    send_names();
    send_acks();
    for (unsigned i = 0; i < st->ncpus; i++) {
        st->q.send_lost(i, st->cpus[i].sent, st->cpus[i].ring->lost);
    }
    st->end_buf = {status, reason, tsc::now()};
    st->q.send_blob(ts::frame_end, &st->end_buf, sizeof st->end_buf, &st->end_busy);
    while (st->q.in_flight()) {
        st->q.wait();
    }
    st->stopped = true;
}

void drain_thread(void*)
{
    send_meta();
    st->started.signal();
    for (;;) {
        st->q.reclaim();
        if (st->stopped) {
            // After a stop: the rings are no longer drained; they fill and
            // count what they drop, as without a reader.
            if (__atomic_load_n(&st->finish_req, __ATOMIC_ACQUIRE)) {
                st->finished.signal();
            }
            threads::sleep_ns(period_us * 1000);
            continue;
        }
        if (__atomic_load_n(&st->finish_req, __ATOMIC_ACQUIRE)) {
            end_stream(ts::end_app_exit, st->finish_status);
            st->finished.signal();
            continue;
        }
        if (uint32_t id = __atomic_exchange_n(&st->stop_id, 0, __ATOMIC_ACQ_REL)) {
            send_own_ack(id, 0, "stopping: the rest of the trace follows, then the end frame");
            end_stream(ts::end_stopped, 0);
            continue;
        }
        uint32_t flush = __atomic_exchange_n(&st->flush_id, 0, __ATOMIC_ACQ_REL);
        send_names();
        bool more = false;
        for (unsigned i = 0; i < st->ncpus; i++) {
            more |= send_data(i, flush != 0);
        }
        if (flush) {
            send_own_ack(flush, 0, "flushed");
        }
        send_acks();
        if (!more) {
            threads::sleep_ns(period_us * 1000);
        } else if (!st->q.room_for_data()) {
            st->q.wait();
        }
    }
}

}  // namespace

void start()
{
    const trace::control& c = osvtrace_control;
    auto* r0 = reinterpret_cast<trace::ring*>(c.rings[0]);
    if (!r0 || r0->mode != trace::ring_mode::stream) {
        return;  // flight recorder: nobody drains
    }
    // The first registered device that comes up carries the stream.
    const trace_port::ops* port = nullptr;
    for (const trace_port::ops* const* p = trace_port::first(); p < trace_port::last() && !port; p++) {
        if ((*p)->start(ctl_receive)) {
            port = *p;
        }
    }
    if (!port) {
        const char* what = trace_port::first() < trace_port::last() ? (*trace_port::first())->name : "device";
        kprintf("trace: tracemode=stream but no %s to stream to; the rings fill and drop\n", what);
        return;
    }
    uint64_t waited = 0;
    while (waited < connect_timeout_ms && !port->connected()) {
        threads::sleep_ns(1000000);
        waited++;
    }
    if (!port->connected()) {
        kprintf("trace: no host connected to port %s within %lu ms; not streaming\n", ts::port_name,
                connect_timeout_ms);
        return;
    }
    auto* s = new state{};
    if (!s) {
        kprintf("trace: no memory for the stream\n");
        return;
    }
    s->ncpus = __atomic_load_n(&c.ncpus, __ATOMIC_ACQUIRE);
    trace::ring* rings[trace::max_cpus];
    for (unsigned i = 0; i < s->ncpus; i++) {
        rings[i] = reinterpret_cast<trace::ring*>(c.rings[i]);
        s->cpus[i].ring = rings[i];
        s->cpus[i].sent = rings[i]->tail;
    }
    if (!s->q.init(port, rings, s->ncpus)) {
        kprintf("trace: no memory for the stream\n");
        return;
    }
    s->names_gen_seen = ~0u;
    st = s;
    drain = threads::create("trace-drain", drain_thread, nullptr);
    if (!drain) {
        kprintf("trace: cannot create the drain thread\n");
        st = nullptr;
        return;
    }
    // The app starts only once the host has the meta frame on its way: even if the app
    // panics at once, the host has a trace file (with whatever the drain got out).
    st->started.wait();
}

void finish(int status)
{
    if (!st) {
        return;
    }
    st->finish_status = status;
    __atomic_store_n(&st->finish_req, true, __ATOMIC_RELEASE);
    st->finished.wait();
}

void request_flush(uint32_t id)
{
    if (st) {
        __atomic_store_n(&st->flush_id, id ? id : 1, __ATOMIC_RELEASE);
    }
}

void request_stop(uint32_t id)
{
    if (st) {
        __atomic_store_n(&st->stop_id, id ? id : 1, __ATOMIC_RELEASE);
    }
}

// NOTE: one producer (the virtio-console service thread runs every command),
// one consumer (the drain): a lock-free single-producer ring. A full ring
// drops the reply (the host times out on it).
void post_ack(uint32_t id, int32_t result, const char* msg)
{
    if (!st) {
        return;
    }
    uint32_t head = st->ack_head;
    if (head - __atomic_load_n(&st->ack_tail, __ATOMIC_ACQUIRE) >= max_acks) {
        return;
    }
    ack_rec& a = st->acks[head % max_acks];
    while (__atomic_load_n(&st->ack_busy[head % max_acks], __ATOMIC_ACQUIRE)) {
        threads::sleep_ns(100000);  // still on its way to the device
    }
    a.p = {id, result, tsc::now()};
    memset(a.msg, 0, sizeof a.msg);
    strlcpy(a.msg, msg, sizeof a.msg);
    __atomic_store_n(&st->ack_head, head + 1, __ATOMIC_RELEASE);
}

}  // namespace trace_stream
