// soak [--seconds S] [--udp PORT]: a mixed workload that keeps every
// subsystem's tracepoints busy for S seconds (tests/test_soak.py runs it on
// 8 vCPUs with every tracepoint on, streaming):
//
//   - 2 threads per CPU contend on 3 mutexes (lock, try_lock, hand-offs);
//   - 2 producers and 2 consumers share a 4-slot queue (condvars);
//   - two threads pass a token through wait queues (wake-ups, switches);
//   - one sleeper per CPU sleeps 50..550 us at a time (timers firing in
//     interrupt context, idle and its wake-ups);
//   - a spawner creates and joins waves of 8 short threads;
//   - one pinned marker thread per CPU emits trace_marker records numbered
//     0, 1, 2 ... in bursts (the host finds the holes a full ring made);
//   - with --udp PORT, a UDP echo server on net channels (the host sends).
//
// At the end each marker thread waits until its ring has no drop left
// unreported (a trace_lost record written), then prints
// "soak: cpu C emitted N", so the host can check the counts exactly.
#include <atomic>

#include "apps/busy.hh"
#include "apps/options.hh"
#include "apps/udp_server.hh"
#include "core/app.hh"
#include "core/console.hh"
#include "core/mutex.hh"
#include "core/percpu.hh"
#include "core/thread.hh"
#include "core/waitqueue.hh"
#include "generated/tracepoints.hh"
#include "trace/control.hh"
#include "trace/ring.hh"
#include "tsc.hh"

namespace {

constexpr unsigned max_cpus = 64;
constexpr unsigned max_threads = 256;

std::atomic<bool> stopping{false};

uint64_t rnd(uint64_t* x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x >> 33;
}

// ---- mutexes
mutex locks[3];
uint64_t guarded[3];

void contend(void* arg)
{
    uint64_t x = reinterpret_cast<uintptr_t>(arg) * 0x9e3779b97f4a7c15ull + 1;
    while (!stopping.load(std::memory_order_relaxed)) {
        unsigned k = rnd(&x) % 3;
        if (rnd(&x) % 4 == 0) {
            if (locks[k].try_lock()) {
                guarded[k]++;
                locks[k].unlock();
            }
            continue;
        }
        locks[k].lock();
        guarded[k]++;
        busy::spin(200 + rnd(&x) % 400);
        locks[k].unlock();
        busy::spin(rnd(&x) % 2000);
        if (rnd(&x) % 64 == 0) {
            threads::sleep_ns(20000);
        }
    }
}

// ---- condvar queue
struct {
    mutex m;
    condvar not_full, not_empty;
    uint64_t buf[4];
    uint64_t head = 0, tail = 0;
} q;

void produce(void*)
{
    for (uint64_t k = 1; !stopping.load(std::memory_order_relaxed); k++) {
        q.m.lock();
        while (q.tail - q.head == 4 && !stopping.load(std::memory_order_relaxed)) {
            q.not_full.wait(q.m);
        }
        if (q.tail - q.head < 4) {
            q.buf[q.tail++ % 4] = k;
            q.not_empty.wake_one();
        }
        q.m.unlock();
    }
}

void consume(void*)
{
    for (;;) {
        q.m.lock();
        while (q.tail == q.head && !stopping.load(std::memory_order_relaxed)) {
            q.not_empty.wait(q.m);
        }
        if (q.tail == q.head) {
            q.m.unlock();
            return;
        }
        q.head++;
        q.not_full.wake_one();
        q.m.unlock();
        busy::spin(500);
    }
}

void wake_queue()
{
    q.m.lock();
    q.not_full.wake_all();
    q.not_empty.wake_all();
    q.m.unlock();
}

// ---- wait-queue ping-pong
struct {
    waitqueue wq[2];
    std::atomic<int> turn{0};
} table;

void play(void* arg)
{
    const int me = int(reinterpret_cast<uintptr_t>(arg));
    while (!stopping.load(std::memory_order_relaxed)) {
        table.wq[me].wait_until([&] { return table.turn.load() == me || stopping.load(); });
        table.turn.store(1 - me);
        table.wq[1 - me].wake_one();
    }
    table.wq[1 - me].wake_all();
}

// ---- sleepers (timers)
void sleeper(void* arg)
{
    uint64_t x = reinterpret_cast<uintptr_t>(arg) + 77;
    while (!stopping.load(std::memory_order_relaxed)) {
        threads::sleep_ns(50000 + rnd(&x) % 500000);
    }
}

// ---- thread waves
waitqueue wave_wq;
std::atomic<int> wave_arrived{0};

void wave_member(void*)
{
    threads::sleep_ns(10000 + (threads::current()->id % 5) * 7000);
    threads::yield();
    wave_arrived.fetch_add(1);
    wave_wq.wake_all();
}

void spawner(void*)
{
    while (!stopping.load(std::memory_order_relaxed)) {
        thread* t[8];
        wave_arrived.store(0);
        unsigned n = 0;
        for (unsigned i = 0; i < 8; i++) {
            t[i] = threads::create("wave", wave_member, nullptr);
            n += t[i] != nullptr;
        }
        wave_wq.wait_until([&] { return wave_arrived.load() >= int(n); });
        for (unsigned i = 0; i < 8; i++) {
            if (t[i]) {
                threads::join(t[i]);
            }
        }
    }
}

// ---- numbered markers, one pinned thread per CPU
struct alignas(128) marker_worker {
    unsigned cpu;
    uint64_t seq = 0;
};
marker_worker markers[max_cpus];

inline void mark(marker_worker* w)
{
    // NOTE: the flag test repeats the emitter's own: a record is counted exactly when written or dropped.
    if (trace::enabled[trace::tp_trace_marker]) {
        trace_trace_marker(w->seq++, "soak");
    }
}

void marker_loop(void* arg)
{
    auto* w = static_cast<marker_worker*>(arg);
    while (!stopping.load(std::memory_order_relaxed)) {
        for (unsigned i = 0; i < 64; i++) {
            mark(w);
        }
        threads::sleep_ns(1000000);
    }
    // Until this CPU's ring has announced every drop with a trace_lost record: the
    // host then checks that the announced counts add up to the ring's lost counter.
    auto* r = reinterpret_cast<trace::ring*>(osvtrace_control.rings[w->cpu]);
    for (int tries = 0; tries < 1000; tries++) {
        threads::sleep_ns(20000000);  // the drain empties the ring meanwhile
        mark(w);
        if (!r || r->pending_lost == 0) {
            break;
        }
    }
}

// ---- UDP echo (optional)
bool echo(void*, net::udp_socket* sock, const net::udp_peer& from, const char* req, size_t len)
{
    return net::udp_sendto(sock, req, len, from) >= 0;
}

uint64_t udp_port = 0;
int udp_status = 0;

void udp_thread(void*)
{
    udp_server::options o;
    o.name = "soak-udp";
    o.port = uint16_t(udp_port);
    o.threads = 2;
    o.idle_exit_ms = 1500;  // the host stops sending at the end of the soak
    udp_status = udp_server::run(o, nullptr, echo);
}

int soak_main(int argc, char** argv)
{
    uint64_t seconds = 10;
    app_option opts[] = {{"seconds", &seconds, 1, 86400}, {"udp", &udp_port, 0, 65535}};
    if (!parse_app_options(argc, argv, opts, "soak")) {
        kprintf("usage: soak [--seconds S] [--udp PORT]\n");
        return 2;
    }
    const unsigned ncpus = online_cpus();
    thread* ts[max_threads];
    unsigned n = 0;
    auto add = [&](thread* t) {
        if (!t) {
            kprintf("soak: cannot create a thread\n");
        } else if (n < max_threads) {
            ts[n++] = t;
        }
    };
    for (unsigned c = 0; c < ncpus && c < max_cpus; c++) {
        markers[c].cpu = c;
        add(threads::create_on(c, "marker", marker_loop, &markers[c]));
        add(threads::create_on(c, "sleeper", sleeper, reinterpret_cast<void*>(uintptr_t(c))));
    }
    for (unsigned i = 0; i < 2 * ncpus; i++) {
        add(threads::create("contend", contend, reinterpret_cast<void*>(uintptr_t(i + 1))));
    }
    for (unsigned i = 0; i < 2; i++) {
        add(threads::create("producer", produce, nullptr));
        add(threads::create("consumer", consume, nullptr));
    }
    add(threads::create("ping", play, reinterpret_cast<void*>(uintptr_t(0))));
    add(threads::create("pong", play, reinterpret_cast<void*>(uintptr_t(1))));
    add(threads::create("spawner", spawner, nullptr));
    thread* udp = udp_port ? threads::create("udp", udp_thread, nullptr) : nullptr;
    kprintf("soak: %u CPUs, %u threads, %lu s%s\n", ncpus, n, seconds, udp_port ? ", udp echo" : "");

    const uint64_t end = tsc::now() + tsc::from_ns(seconds * 1000000000ull);
    while (tsc::now() < end) {
        threads::sleep_ns(100000000);
    }
    stopping.store(true);
    kprintf("soak: stopping\n");  // the host stops sending: the echo server's idle exit follows
    wake_queue();
    table.wq[0].wake_all();
    table.wq[1].wake_all();
    for (unsigned i = 0; i < n; i++) {
        threads::join(ts[i]);
    }
    if (udp) {
        threads::join(udp);
    }
    uint64_t total = 0;
    for (unsigned c = 0; c < ncpus && c < max_cpus; c++) {
        kprintf("soak: cpu %u emitted %lu\n", c, markers[c].seq);
        total += markers[c].seq;
    }
    kprintf("soak: done, %lu markers, guarded %lu/%lu/%lu%s\n", total, guarded[0], guarded[1], guarded[2],
            udp && udp_status ? ", udp server failed" : "");
    return udp && udp_status ? 1 : 0;
}

}  // namespace

REGISTER_APP(soak_app, "soak", "[--seconds S] [--udp PORT]  mixed workload for the soak test", soak_main);
