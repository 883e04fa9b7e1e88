// condvar [--producers P] [--consumers C] [--items N] [--capacity K]
//
// A bounded queue of K slots under one mutex and two condition variables
// (not full, not empty): P producers put N items each, C consumers take them.
// A lost wake-up leaves a thread asleep forever (the run never ends: tests
// put a timeout on it); a lost or doubled item shows in the sum. Prints
// `condvar: produced=.. consumed=.. sum_ok=1 waits=..`. Exits 1 on a mismatch.
#include "apps/options.hh"
#include "core/app.hh"
#include "core/console.hh"
#include "core/mutex.hh"
#include "core/thread.hh"
#include "lib/printf.hh"
#include "tsc.hh"

namespace {

constexpr uint64_t max_threads = 32, max_capacity = 64;

struct queue {
    mutex m;
    condvar not_full, not_empty;
    uint64_t buf[max_capacity];
    uint64_t capacity = 4, head = 0, tail = 0;
    uint64_t producers = 1, items = 1000, producers_done = 0;
    uint64_t consumed = 0, sum = 0, waits = 0;
};

queue q;

void produce(void*)
{
    for (uint64_t k = 1; k <= q.items; k++) {
        q.m.lock();
        while (q.tail - q.head == q.capacity) {
            q.waits++;
            q.not_full.wait(q.m);
        }
        q.buf[q.tail++ % q.capacity] = k;
        q.not_empty.wake_one();
        q.m.unlock();
    }
    q.m.lock();
    if (++q.producers_done == q.producers) {
        q.not_empty.wake_all();  // consumers waiting on an empty queue can finish
    }
    q.m.unlock();
}

void consume(void*)
{
    q.m.lock();
    for (;;) {
        while (q.head == q.tail && q.producers_done < q.producers) {
            q.waits++;
            q.not_empty.wait(q.m);
        }
        if (q.head == q.tail) {
            break;
        }
        q.sum += q.buf[q.head++ % q.capacity];
        q.consumed++;
        q.not_full.wake_one();
    }
    q.m.unlock();
}

int condvar_main(int argc, char** argv)
{
    uint64_t producers = 2, consumers = 2, items = 20000, capacity = 4;
    app_option opts[] = {
        {"producers", &producers, 1, max_threads / 2}, {"consumers", &consumers, 1, max_threads / 2},
        {"items", &items, 1, 1ull << 32},              {"capacity", &capacity, 1, max_capacity},
    };
    if (!parse_app_options(argc, argv, opts, "condvar")) {
        kprintf("usage: condvar [--producers P] [--consumers C] [--items N] [--capacity K]\n");
        return 2;
    }
    q.capacity = capacity;
    q.producers = producers;
    q.items = items;
    thread* ts[max_threads];
    uint64_t n = 0, t0 = tsc::now();
    for (uint64_t i = 0; i < producers + consumers; i++) {
        char name[16];
        bool prod = i < producers;
        snprintf(name, sizeof name, prod ? "producer%lu" : "consumer%lu", prod ? i : i - producers);
        if (!(ts[n++] = threads::create(name, prod ? produce : consume, nullptr))) {
            kprintf("condvar: cannot create thread %lu\n", i);
            return 1;
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        threads::join(ts[i]);
    }
    uint64_t us = tsc::to_us(tsc::now() - t0);
    uint64_t expect_sum = producers * (items * (items + 1) / 2);
    bool ok = q.consumed == producers * items && q.sum == expect_sum;
    kprintf("condvar: producers=%lu consumers=%lu produced=%lu consumed=%lu sum_ok=%d waits=%lu elapsed_us=%lu\n",
            producers, consumers, producers * items, q.consumed, ok ? 1 : 0, q.waits, us);
    return ok ? 0 : 1;
}

}  // namespace

REGISTER_APP(condvar_app, "condvar", "[--producers P] [--consumers C] [--items N] [--capacity K]  "
             "bounded queue on mutex + condition variables", condvar_main);
