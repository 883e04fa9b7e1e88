#include "apps/udp_server.hh"

#include <atomic>

#include "apps/busy.hh"
#include "apps/options.hh"
#include "core/console.hh"
#include "core/heap.hh"
#include "core/percpu.hh"
#include "core/thread.hh"
#include "lib/printf.hh"
#include "lib/string.hh"
#include "net/netif.hh"
#include "tsc.hh"

namespace udp_server {
namespace {

constexpr unsigned max_threads = 64;
constexpr uint64_t watch_ns = 10000000;  // the main thread looks at the counters every 10 ms
constexpr size_t request_max = 2048;     // bigger than any datagram we can receive (no fragments)

struct shared;

struct worker {
    shared* sh = nullptr;
    unsigned index = 0;
    net::udp_socket* sock = nullptr;
    thread* t = nullptr;
    uint64_t served = 0;
    unsigned cpu = 0;
};

struct shared {
    const options* o;
    uint64_t work_loops;  // busy::spin loops per request (--work-us)
    state_fn make_state;
    handler_fn handle;
    std::atomic<uint64_t> requests{0};
    std::atomic<unsigned> ready{0}, failed{0};
    std::atomic<unsigned> holding{0};  // workers waiting for --serve-after-drops (the idle exit waits too)
    worker workers[max_threads];
};

void serve(void* arg)
{
    auto* w = static_cast<worker*>(arg);
    shared* sh = w->sh;
    w->cpu = this_cpu()->id;
    void* state = sh->make_state ? sh->make_state(w->index) : nullptr;
    auto* buf = static_cast<char*>(malloc(request_max));
    int rc = net::udp_invalid;
    if (buf && (!sh->make_state || state)) {
        rc = net::udp_bind(w->sock, sh->o->port, net::udp_reuseport);
    }
    if (rc) {
        kprintf("%s: worker %u: cannot bind udp port %u (%d)\n", sh->o->name, w->index, sh->o->port, rc);
        sh->failed.fetch_add(1);
        sh->ready.fetch_add(1);
        return;
    }
    if (sh->o->serve_after_drops) {
        // Its channel fills (256 datagrams) and drops the rest until the count is reached.
        sh->holding.fetch_add(1);
        sh->ready.fetch_add(1);
        const uint64_t end = tsc::now() + tsc::from_ns(30000000000ull);
        while (net::udp_stats(w->sock).channel_drops < sh->o->serve_after_drops && tsc::now() < end) {
            threads::sleep_ns(1000000);
        }
        sh->holding.fetch_sub(1);
    } else {
        sh->ready.fetch_add(1);
    }
    net::udp_peer from;
    for (;;) {
        int n = net::udp_recvfrom(w->sock, buf, request_max, &from);
        if (n < 0) {
            break;  // closed by the main thread
        }
        if (sh->handle(state, w->sock, from, buf, size_t(n))) {
            w->served++;
            sh->requests.fetch_add(1, std::memory_order_relaxed);
        }
        if (sh->work_loops) {
            busy::spin(sh->work_loops);
        }
    }
    free(buf);
}

}  // namespace

bool parse(int argc, char** argv, options* o)
{
    uint64_t port = 0;
    if (argc < 2 || !parse_u64(argv[1], strlen(argv[1]), &port) || port == 0 || port > 65535) {
        kprintf("usage: %s " UDP_SERVER_USAGE "\n", o->name);
        return false;
    }
    o->port = uint16_t(port);
    uint64_t threads = o->threads, first = o->first_cpu;
    app_option opts[] = {{"threads", &threads, 1, max_threads},
                         {"first-cpu", &first, 0, max_cpus - 1},
                         {"count", &o->count, 0, ~0ull},
                         {"idle-exit", &o->idle_exit_ms, 0, 3600000},
                         {"work-us", &o->work_us, 0, 1000000},
                         {"serve-after-drops", &o->serve_after_drops, 0, ~0ull}};
    if (!parse_app_options(argc - 1, argv + 1, opts, o->name)) {
        return false;
    }
    o->threads = unsigned(threads);
    o->first_cpu = unsigned(first);
    return true;
}

int run(const options& o, state_fn make_state, handler_fn handle)
{
    if (!net::netif::up()) {
        kprintf("%s: no network interface (osvtrace run --net user ...)\n", o.name);
        return 3;
    }
    auto* sh = new shared;
    sh->o = &o;
    sh->make_state = make_state;
    sh->handle = handle;
    sh->work_loops = o.work_us ? o.work_us * busy::loops_per_us() : 0;
    unsigned ncpu = online_cpus();
    for (unsigned i = 0; i < o.threads; i++) {
        worker& w = sh->workers[i];
        w.sh = sh;
        w.index = i;
        w.sock = net::udp_open();
        char name[24];
        snprintf(name, sizeof name, "%s-%u", o.name, i);
        w.t = w.sock ? threads::create_on((o.first_cpu + i) % ncpu, name, serve, &w) : nullptr;
        if (!w.t) {
            kprintf("%s: cannot start worker %u\n", o.name, i);
            return 1;
        }
    }
    while (sh->ready.load() < o.threads) {
        threads::sleep_ns(1000000);
    }
    if (sh->failed.load()) {
        return 1;  // FIXME: the workers that did bind stay blocked; the VM ends with the app anyway
    }
    kprintf("%s: listening on udp port %u with %u threads\n", o.name, o.port, o.threads);
    uint64_t last = 0;
    uint64_t idle_since = tsc::now();
    const uint64_t idle_ticks = tsc::from_ns(o.idle_exit_ms * 1000000);
    for (;;) {
        threads::sleep_ns(watch_ns);
        uint64_t n = sh->requests.load(std::memory_order_relaxed);
        uint64_t now = tsc::now();
        if (o.count && n >= o.count) {
            break;
        }
        if (n != last || sh->holding.load()) {
            last = n;
            idle_since = now;
        } else if (o.idle_exit_ms && now - idle_since >= idle_ticks) {
            break;
        }
    }
    for (unsigned i = 0; i < o.threads; i++) {
        net::udp_close(sh->workers[i].sock);
    }
    for (unsigned i = 0; i < o.threads; i++) {
        threads::join(sh->workers[i].t);
    }
    for (unsigned i = 0; i < o.threads; i++) {
        const worker& w = sh->workers[i];
        net::udp_socket_stats s = net::udp_stats(w.sock);
        kprintf("%s: worker %u on cpu %u: %lu requests, %lu datagrams in, %lu out, %lu bad, %lu channel drops\n",
                o.name, i, w.cpu, w.served, s.received, s.sent, s.bad, s.channel_drops);
    }
    kprintf("%s: %lu requests served\n", o.name, sh->requests.load());
    net::netif::print_counters(o.name);
    return 0;
}

}  // namespace udp_server
