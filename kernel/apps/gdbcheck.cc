// gdbcheck [--waiters W] [--parked P] [--sleepers S] [--stack KB]: a known
// state for the gdb commands' tests (tests/test_gdb_commands.py) and
// benchmark (tests/bench/bench_gdb.py).
//
// Sets up, in this order, each step finished before the next starts:
//   - "holder" locks gdbcheck::held, then waits on the wait queue gdbcheck::gate;
//   - P threads "parked-i" wait on the same wait queue;
//   - W threads "waiter-i" block in gdbcheck::held.lock(): queued in order i;
//   - main locks gdbcheck::mine (no contention);
//   - S threads "sleeper-i" sleep for an hour (detached: never joined).
// Then it prints the kernel's own view of every live thread (id, name, state,
// home CPU, wait object) and of each mutex (owner, waiters in queue order),
// and calls gdbcheck_stop(): a debugger stopped there sees exactly that
// state. Afterwards it releases everything, joins what it can and returns 0.
#include <atomic>

#include "apps/options.hh"
#include "core/app.hh"
#include "core/console.hh"
#include "core/heap.hh"
#include "core/mutex.hh"
#include "core/page_alloc.hh"
#include "core/percpu.hh"
#include "core/thread.hh"
#include "core/waitqueue.hh"
#include "lib/printf.hh"

namespace gdbcheck {

// Globals (not in an anonymous namespace), so gdb names them gdbcheck::held ...
mutex held;
mutex mine;
waitqueue gate;

}  // namespace gdbcheck

// The stop point: a breakpoint here sees the state printed just before.
extern "C" __attribute__((noinline)) void gdbcheck_stop()
{
    asm volatile("" ::: "memory");
}

namespace {

std::atomic<bool> released{false};
std::atomic<bool> holder_locked{false};

void holder(void*)
{
    gdbcheck::held.lock();
    holder_locked.store(true);
    gdbcheck::gate.wait_until([] { return released.load(); });
    gdbcheck::held.unlock();
}

void parked(void*)
{
    gdbcheck::gate.wait_until([] { return released.load(); });
}

void waiter(void*)
{
    gdbcheck::held.lock();
    gdbcheck::held.unlock();
}

void sleeper(void*)
{
    threads::sleep_ns(3600ull * 1000000000ull);
}

const char* state_name(thread_state s)
{
    switch (s) {
    case thread_state::running: return "running";
    case thread_state::runnable: return "runnable";
    case thread_state::waiting: return "waiting";
    case thread_state::sleeping: return "sleeping";
    case thread_state::dead: return "dead";
    case thread_state::waking: return "waking";
    }
    return "?";
}

// Until t blocks in `want` (it announced the wait and the scheduler took it
// off its CPU).
bool settle(thread* t, thread_state want)
{
    for (int i = 0; i < 20000; i++) {
        if (t->state.load() == want && !t->on_cpu.load()) {
            return true;
        }
        threads::sleep_ns(100000);
    }
    kprintf("gdbcheck: thread %u (%s) never got to %s\n", t->id, t->name, state_name(want));
    return false;
}

thread* start(const char* prefix, unsigned i, void (*fn)(void*), size_t stack)
{
    char name[thread_name_max + 1];
    snprintf(name, sizeof name, "%s-%u", prefix, i);
    thread* t = threads::create(name, fn, nullptr, stack);
    if (!t) {
        kprintf("gdbcheck: cannot create %s\n", name);
    }
    return t;
}

void print_mutex(const char* name, mutex& m, thread* const* queue, unsigned n)
{
    thread* o = m.owner();
    kprintf("gdbcheck: mutex %s %p owner=%u waiters=", name, static_cast<void*>(&m), o ? o->id : 0);
    for (unsigned i = 0; i < n; i++) {
        kprintf(i ? ",%u" : "%u", queue[i]->id);
    }
    kprintf(n ? "\n" : "-\n");
}

int gdbcheck_main(int argc, char** argv)
{
    uint64_t nwaiters = 3, nparked = 2, nsleepers = 4, stack_kb = 16;
    app_option opts[] = {{"waiters", &nwaiters, 0, 64},
                         {"parked", &nparked, 0, 64},
                         {"sleepers", &nsleepers, 0, threads_max},
                         {"stack", &stack_kb, 8, 1024}};
    if (!parse_app_options(argc, argv, opts, "gdbcheck")) {
        return 2;
    }
    const size_t stack = stack_kb * 1024;
    thread* h = threads::create("holder", holder, nullptr, stack);
    if (!h || !settle(h, thread_state::waiting) || !holder_locked.load()) {
        return 1;
    }
    thread* gate_queue[1 + 64] = {h};
    for (unsigned i = 1; i <= nparked; i++) {
        thread* t = start("parked", i, parked, stack);
        if (!t || !settle(t, thread_state::waiting)) {
            return 1;
        }
        gate_queue[i] = t;
    }
    thread* lock_queue[64];
    for (unsigned i = 0; i < nwaiters; i++) {
        thread* t = start("waiter", i + 1, waiter, stack);
        if (!t || !settle(t, thread_state::waiting)) {
            return 1;
        }
        lock_queue[i] = t;
    }
    gdbcheck::mine.lock();
    for (unsigned i = 1; i <= nsleepers; i++) {
        thread* t = start("sleeper", i, sleeper, stack);
        if (!t) {
            return 1;
        }
        threads::detach(t);
    }
    for (uint32_t id = 1; id < threads_max; id++) {
        thread* t = threads::by_id(id);
        if (t && !strncmp(t->name, "sleeper-", 8) && !settle(t, thread_state::sleeping)) {
            return 1;
        }
    }

    // The kernel's own view, then the stop point.
    unsigned live = 0;
    for (uint32_t id = 1; id < threads_max; id++) {
        thread* t = threads::by_id(id);
        if (!t) {
            continue;
        }
        live++;
        kprintf("gdbcheck: thread %u %s %s cpu=%u wait=%p\n", t->id, t->name, state_name(t->state.load()),
                t->home ? t->home->id : 0, t->wait_obj);
    }
    print_mutex("held", gdbcheck::held, lock_queue, unsigned(nwaiters));
    print_mutex("mine", gdbcheck::mine, nullptr, 0);
    kprintf("gdbcheck: waitqueue gate %p waiters=", static_cast<void*>(&gdbcheck::gate));
    for (unsigned i = 0; i <= nparked; i++) {
        kprintf(i ? ",%u" : "%u", gate_queue[i]->id);
    }
    kprintf("\ngdbcheck: memory pages_total=%zu pages_free=%zu heap_in_use=%zu\n", pages::total_pages(),
            pages::free_pages(), heap::bytes_in_use());
    kprintf("gdbcheck: %u threads, main is %u on cpu %u; stopping\n", live, threads::current()->id,
            this_cpu()->id);
    gdbcheck_stop();

    gdbcheck::mine.unlock();
    released.store(true);
    gdbcheck::gate.wake_all();
    threads::join(h);
    for (unsigned i = 1; i <= nparked; i++) {
        threads::join(gate_queue[i]);
    }
    for (unsigned i = 0; i < nwaiters; i++) {
        threads::join(lock_queue[i]);
    }
    kprintf("gdbcheck: released\n");
    return 0;
}

}  // namespace

REGISTER_APP(gdbcheck_app, "gdbcheck", "[--waiters W] [--parked P] [--sleepers S] [--stack KB]  a known state for gdb",
             gdbcheck_main);
