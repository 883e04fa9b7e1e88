// pingpong N: two threads pass a token back and forth through wait queues N
// times each way; every pass is a wake-up plus a context switch (on one CPU;
// with more, the two threads may sit on two CPUs and each pass is a cross-CPU
// wake-up instead). Reports the switch rate, the figure to compare with a
// Linux guest's futex ping-pong.
#include "core/app.hh"
#include "core/console.hh"
#include "core/percpu.hh"
#include "core/sched.hh"
#include "core/thread.hh"
#include "core/waitqueue.hh"
#include "lib/string.hh"
#include "tsc.hh"

namespace {

struct table {
    waitqueue wq[2];
    int turn = 0;  // whose move it is
    uint64_t rounds = 0;
};

struct player {
    table* t;
    int me;
};

void play(void* arg)
{
    auto* p = static_cast<player*>(arg);
    table* t = p->t;
    const int other = 1 - p->me;
    for (uint64_t i = 0; i < t->rounds; i++) {
        t->wq[p->me].wait_until([&] { return t->turn == p->me; });
        t->turn = other;
        t->wq[other].wake_one();
    }
}

int pingpong_main(int argc, char** argv)
{
    uint64_t n = 10000;
    if (argc > 2 || (argc == 2 && (!parse_u64(argv[1], strlen(argv[1]), &n) || n == 0))) {
        kprintf("usage: pingpong [N]\n");
        return 2;
    }
    table t;
    t.rounds = n;
    player a{&t, 0}, b{&t, 1};
    uint64_t sw0 = sched::total_switches();
    uint64_t t0 = tsc::now();
    thread* ta = threads::create("ping", play, &a);
    thread* tb = threads::create("pong", play, &b);
    if (!ta || !tb) {
        kprintf("pingpong: cannot create threads\n");
        return 1;
    }
    threads::join(ta);
    threads::join(tb);
    uint64_t ticks = tsc::now() - t0;
    uint64_t switches = sched::total_switches() - sw0;
    uint64_t ns = tsc::to_ns(ticks);
    uint64_t per_sec = ns ? switches * 1000000000ull / ns : 0;
    uint64_t ns_per = switches ? ns / switches : 0;
    kprintf("pingpong: %lu passes each way, %lu switches in %lu.%03lu ms: %lu switches/s (%lu ns/switch)\n",
            n, switches, ns / 1000000, (ns / 1000) % 1000, per_sec, ns_per);
    return 0;
}

}  // namespace

REGISTER_APP(pingpong_app, "pingpong", "[N]  two threads pass a token N times (default 10000)",
             pingpong_main);
