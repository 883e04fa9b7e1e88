// pingpong [N] [cross|idle]: two threads pass a token back and forth through
// wait queues N times each way; every pass is a wake-up plus a context switch
// (on one CPU; with more, the two threads may sit on two CPUs and each pass is
// a cross-CPU wake-up instead). Reports the switch rate, the figure to compare
// with a Linux guest's futex ping-pong.
//
// With 2 CPUs or more: `cross` pins ping to CPU 0 and pong to CPU 1, so every
// wake-up crosses CPUs whatever placement and balancing would have done.
// `idle` does that too, and before each wake-up the waker waits until the
// other CPU is idle: polling its queue (idle_poll=), or halted (at once with
// idle_poll=0, else after the poll window). So every pass wakes an
// idle CPU, polling or halted, however the host runs the vCPUs (the idle-poll
// test counts on that; left to timing, the wake-up often came while the other
// CPU was still on its way to the poll). A wait is given up after 1 s; the
// extra line `pingpong: waited for an idle CPU N times, gave up M` counts those.
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
    bool idle_first = false;  // `idle`: wait for the other CPU to be idle before each wake-up
    uint64_t gave_up[2] = {0, 0};
};

// Until CPU c is idle: polling its queue, or halted (it halts at once when
// idle CPUs do not poll, else once it was idle for longer than the poll
// window). At most 1 s (a loaded host may not run that vCPU for a while):
// false if it never was.
bool wait_idle(cpu* c)
{
    const uint64_t window = sched::idle_poll_window();
    uint64_t end = 0, idle_since = 0;
    for (unsigned i = 1;; i++) {
        if (c->polling.load(std::memory_order_seq_cst)) {
            return true;
        }
        const bool idle = c->idle_now.load(std::memory_order_seq_cst);
        if (idle && !window) {
            return true;
        }
        if (!(i & 63)) {  // the clock sparingly: under TCG each rdtsc takes a global lock
            const uint64_t now = tsc::now();
            end = end ? end : now + tsc::from_ns(1000000000);
            idle_since = !idle ? 0 : idle_since ? idle_since : now;
            if (idle_since && now - idle_since > window) {
                return true;  // past its poll: halted
            }
            if (now > end) {
                return false;
            }
        }
        arch::cpu_relax();
    }
}

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
        // Before the turn passes: the other thread cannot go on without it, so it
        // blocks and its CPU goes idle (after the turn, it might find it set and
        // not block at all, and wait for this CPU in turn).
        if (t->idle_first && !wait_idle(cpus[other])) {
            t->gave_up[p->me]++;
        }
        t->turn = other;
        t->wq[other].wake_one();
    }
}

int pingpong_main(int argc, char** argv)
{
    uint64_t n = 10000;
    const bool idle = argc == 3 && !strcmp(argv[2], "idle");
    const bool cross = idle || (argc == 3 && !strcmp(argv[2], "cross"));
    if (argc > 3 || (argc == 3 && !cross) ||
        (argc >= 2 && (!parse_u64(argv[1], strlen(argv[1]), &n) || n == 0))) {
        kprintf("usage: pingpong [N] [cross|idle]\n");
        return 2;
    }
    if (cross && online_cpus() < 2) {
        kprintf("pingpong: %s needs 2 CPUs or more\n", argv[2]);
        return 2;
    }
    table t;
    t.rounds = n;
    t.idle_first = idle;
    player a{&t, 0}, b{&t, 1};
    uint64_t sw0 = sched::total_switches();
    uint64_t t0 = tsc::now();
    thread* ta = cross ? threads::create_on(0, "ping", play, &a) : threads::create("ping", play, &a);
    thread* tb = cross ? threads::create_on(1, "pong", play, &b) : threads::create("pong", play, &b);
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
    if (idle) {
        kprintf("pingpong: waited for an idle CPU %lu times, gave up %lu\n", 2 * n, t.gave_up[0] + t.gave_up[1]);
    }
    return 0;
}

}  // namespace

REGISTER_APP(pingpong_app, "pingpong",
             "[N] [cross|idle]  two threads pass a token N times (default 10000); cross: on CPUs 0 and 1; "
             "idle: each wake-up waits for the other CPU to be idle",
             pingpong_main);
