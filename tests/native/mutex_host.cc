// The kernel's lock-free mutex and condition variable (kernel/lib/lfmutex.hh,
// lfcondvar.hh), compiled for the host with std::thread standing in for
// kernel threads. Built by tests/test_mutex_host.py under ThreadSanitizer:
// the critical sections below use *plain* counters, so any missing
// happens-before edge in the mutex shows up as a reported data race, and a
// lost update or a lost wake-up (a hang: the test has a timeout) fails the run.
//
//   mutex_host exclusion T M N TRY   T threads, M mutexes, N lock/unlock each,
//                                    TRY% of acquisitions by try_lock first
//   mutex_host recursive N
//   mutex_host condvar P C N         P producers, C consumers, N items each
//   mutex_host uncontended N         one thread, N lock/unlock (for callgrind)
//   mutex_host handoff N             two threads hand one mutex back and forth
//
// Prints `key value` pairs on one line; exit status 0 when every check holds.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "lib/lfcondvar.hh"
#include "lib/lfmutex.hh"

namespace {

struct host_thread {
    uint32_t id = 0;
    std::mutex m;  // the test scaffold's parking primitive, not the code under test
    std::condition_variable cv;
    bool permit = false;
    // Counted by the trace hooks: what a trace would show.
    uint64_t handoffs_done = 0, lock_wakes = 0, lock_waits = 0;
};

thread_local host_thread* tls_self;
std::atomic<uint64_t> total_handoffs{0}, total_wakes{0}, total_waits{0};

struct host_platform {
    using thread = host_thread;
    static thread* current() { return tls_self; }
    static uint32_t tid(thread* t) { return t->id; }

    // Like the kernel's: re-test the flag after every wake-up; wake-ups may be
    // stale (a permit left over from an earlier hand-off), never lost.
    // noinline: callgrind subtracts these (the platform's sleep and wake-up,
    // the kernel's scheduler in the guest) from the algorithm's count.
    __attribute__((noinline)) static void wait_flag(const void*, std::atomic<uint32_t>& flag)
    {
        thread* t = current();
        while (!flag.load(std::memory_order_acquire)) {
            std::unique_lock<std::mutex> l(t->m);
            t->cv.wait(l, [t] { return t->permit; });
            t->permit = false;
        }
    }
    __attribute__((noinline)) static void wake(thread* t)
    {
        {
            std::lock_guard<std::mutex> l(t->m);
            t->permit = true;
        }
        t->cv.notify_one();
    }

    static void on_lock(const void*) {}
    static void on_lock_wait(const void*) { current()->lock_waits++; }
    static void on_lock_wake(const void*) { current()->lock_wakes++; }
    static void on_handoff(const void*, uint32_t, uint32_t) { current()->handoffs_done++; }
    static void on_unlock(const void*) {}
    static void on_try_lock(const void*, bool) {}
    static void on_condvar_wait(const void*, const void*) {}
    static void on_condvar_wake(const void*, uint32_t) {}
    [[noreturn]] static void misuse(const char* what, const void* m)
    {
        std::fprintf(stderr, "misuse: %s (%p)\n", what, m);
        std::abort();
    }
};

using mutex = lockfree::mutex<host_platform>;
using condvar = lockfree::condvar<host_platform>;

// Runs fn(i) on n threads, each with its own host_thread; sums the hook counts.
template <class Fn>
void run_threads(unsigned n, Fn fn)
{
    std::vector<host_thread> ts(n);
    std::vector<std::thread> th;
    for (unsigned i = 0; i < n; i++) {
        ts[i].id = i + 1;
        th.emplace_back([&, i] {
            tls_self = &ts[i];
            fn(i);
        });
    }
    for (auto& t : th) {
        t.join();
    }
    for (auto& t : ts) {
        total_handoffs += t.handoffs_done;
        total_wakes += t.lock_wakes;
        total_waits += t.lock_waits;
    }
}

struct guarded {
    mutex m;
    uint64_t counter = 0;  // plain: protected by m only
    int inside = 0;        // plain: 1 while someone is in the critical section
};

int exclusion(unsigned nthreads, unsigned nmutexes, uint64_t iters, unsigned try_pct)
{
    std::vector<guarded> g(nmutexes);
    std::atomic<uint64_t> handed{0}, violations{0}, tries_ok{0};
    run_threads(nthreads, [&](unsigned i) {
        uint64_t x = 0x9e3779b97f4a7c15ull * (i + 1), my_handed = 0, my_tries = 0;
        for (uint64_t k = 0; k < iters; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            guarded& gm = g[x % nmutexes];
            if (try_pct && (x >> 32) % 100 < try_pct && gm.m.try_lock()) {
                my_tries++;
            } else {
                my_handed += gm.m.lock();
            }
            if (gm.inside++) {
                violations++;
            }
            uint64_t c = gm.counter;
            if ((k & 15) == 0) {
                std::this_thread::yield();  // widen the window for a second owner
            }
            gm.counter = c + 1;
            gm.inside--;
            gm.m.unlock();
        }
        handed += my_handed;
        tries_ok += my_tries;
    });
    uint64_t sum = 0;
    for (auto& gm : g) {
        sum += gm.counter;
        if (gm.m.count() != 0 || gm.m.owner()) {
            std::printf("mutex left locked: count %d\n", gm.m.count());
            return 1;
        }
    }
    uint64_t expect = uint64_t(nthreads) * iters;
    std::printf("acquisitions %lu lost_updates %ld violations %lu handed %lu handoffs %lu lock_wakes %lu "
                "lock_waits %lu try_ok %lu\n",
                expect, long(expect - sum), violations.load(), handed.load(), total_handoffs.load(),
                total_wakes.load(), total_waits.load(), tries_ok.load());
    bool ok = sum == expect && !violations && handed == total_handoffs && handed == total_wakes &&
              handed == total_waits;
    return ok ? 0 : 1;
}

int recursive(uint64_t iters)
{
    guarded g;
    run_threads(4, [&](unsigned) {
        for (uint64_t k = 0; k < iters; k++) {
            g.m.lock();
            g.m.lock();
            if (!g.m.try_lock() || !g.m.owned_by_me()) {
                std::abort();
            }
            g.counter++;
            g.m.unlock();
            g.m.unlock();
            if (!g.m.owned_by_me()) {
                std::abort();
            }
            g.m.unlock();
        }
    });
    std::printf("acquisitions %lu counter %lu\n", 4 * iters, g.counter);
    return g.counter == 4 * iters && g.m.count() == 0 ? 0 : 1;
}

int condvar_queue(unsigned producers, unsigned consumers, uint64_t items)
{
    // A bounded queue: producers wait while full, consumers while empty.
    constexpr unsigned cap = 4;
    mutex m;
    condvar not_full, not_empty;
    uint64_t buf[cap], head = 0, tail = 0, done_producers = 0, consumed = 0, sum = 0;
    run_threads(producers + consumers, [&](unsigned i) {
        if (i < producers) {
            for (uint64_t k = 1; k <= items; k++) {
                m.lock();
                while (tail - head == cap) {
                    not_full.wait(m);
                }
                buf[tail++ % cap] = k;
                not_empty.wake_one();
                m.unlock();
            }
            m.lock();
            if (++done_producers == producers) {
                not_empty.wake_all();
            }
            m.unlock();
            return;
        }
        m.lock();
        for (;;) {
            while (head == tail && done_producers < producers) {
                not_empty.wait(m);
            }
            if (head == tail) {
                break;
            }
            sum += buf[head++ % cap];
            consumed++;
            not_full.wake_one();
        }
        m.unlock();
    });
    uint64_t expect_sum = producers * items * (items + 1) / 2;
    std::printf("consumed %lu sum %lu expected %lu\n", consumed, sum, expect_sum);
    return consumed == producers * items && sum == expect_sum ? 0 : 1;
}

// The loops callgrind counts (tests/bench/bench_mutex.py): noinline so their
// instruction counts can be collected alone (--toggle-collect).
__attribute__((noinline)) void bench_uncontended(mutex& m, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++) {
        m.lock();
        m.unlock();
    }
}

int uncontended(uint64_t n)
{
    mutex m;
    host_thread t;
    t.id = 1;
    tls_self = &t;
    bench_uncontended(m, n);
    std::printf("iterations %lu\n", n);
    return 0;
}

// Two threads pass one mutex back and forth: the holder waits until the other
// is past its fetch_add (count >= 2), then unlocks, so every round is a
// hand-off. Same protocol as the kernel's mutexbench. The waiting is outside
// lock()/unlock(), so callgrind can count the algorithm alone.
__attribute__((noinline)) void bench_handoff_side(mutex& m, std::atomic<int>& ready, int me, uint64_t n,
                                                  uint64_t* handed)
{
    if (me == 0) {
        m.lock();  // side 0 holds first
    }
    ready.fetch_add(1);
    while (ready.load() < 2) {
        std::this_thread::yield();
    }
    for (uint64_t k = 0; k < n; k++) {
        if (int(k % 2) == me) {
            while (m.count() < 2) {
                std::this_thread::yield();
            }
            m.unlock();
        } else {
            *handed += m.lock();
        }
    }
    if (int((n - 1) % 2) != me) {
        m.unlock();
    }
}

int handoff(uint64_t n)
{
    mutex m;
    std::atomic<int> ready{0};
    uint64_t handed[2] = {0, 0};
    run_threads(2, [&](unsigned i) { bench_handoff_side(m, ready, int(i), n, &handed[i]); });
    std::printf("rounds %lu handoffs %lu\n", n, handed[0] + handed[1]);
    return handed[0] + handed[1] == n ? 0 : 1;
}

uint64_t arg(char** argv, int i) { return std::strtoull(argv[i], nullptr, 0); }

}  // namespace

int main(int argc, char** argv)
{
    if (argc >= 6 && !std::strcmp(argv[1], "exclusion")) {
        return exclusion(unsigned(arg(argv, 2)), unsigned(arg(argv, 3)), arg(argv, 4), unsigned(arg(argv, 5)));
    }
    if (argc >= 3 && !std::strcmp(argv[1], "recursive")) {
        return recursive(arg(argv, 2));
    }
    if (argc >= 5 && !std::strcmp(argv[1], "condvar")) {
        return condvar_queue(unsigned(arg(argv, 2)), unsigned(arg(argv, 3)), arg(argv, 4));
    }
    if (argc >= 3 && !std::strcmp(argv[1], "uncontended")) {
        return uncontended(arg(argv, 2));
    }
    if (argc >= 3 && !std::strcmp(argv[1], "handoff")) {
        return handoff(arg(argv, 2));
    }
    std::fprintf(stderr, "usage: mutex_host exclusion T M N TRY | recursive N | condvar P C N | uncontended N | "
                         "handoff N\n");
    return 2;
}
