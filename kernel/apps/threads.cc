// threads [N]: creates and joins N short-lived threads (default 3000), in
// waves of 8 that sleep, yield and wait on a shared wait queue: exercises
// thread ids wrapping past the table size, stack guard pages coming and
// going, timers and wake_all. Prints the create+join rate.
#include <atomic>

#include "core/app.hh"
#include "core/heap.hh"
#include "core/page_alloc.hh"
#include "core/thread.hh"
#include "core/waitqueue.hh"
#include "core/console.hh"
#include "paging.hh"
#include "lib/string.hh"
#include "tsc.hh"

namespace {

constexpr int wave = 8;

struct gate {
    waitqueue wq;
    std::atomic<int> arrived{0};
};

void worker(void* arg)
{
    auto* g = static_cast<gate*>(arg);
    threads::sleep_ns(10000 + (threads::current()->id % 7) * 5000);
    threads::yield();
    if (g->arrived.fetch_add(1) + 1 == wave) {
        g->wq.wake_all();
    } else {
        // Woken once the whole wave has arrived.
        g->wq.wait_until([g] { return g->arrived.load(std::memory_order_acquire) == wave; });
    }
}

int threads_main(int argc, char** argv)
{
    uint64_t n = 3000;
    if (argc > 2 || (argc == 2 && (!parse_u64(argv[1], strlen(argv[1]), &n) || n == 0))) {
        kprintf("usage: threads [N]\n");
        return 2;
    }
    const size_t free0 = pages::free_pages() + paging::table_pages();
    const size_t heap0 = heap::bytes_in_use();
    uint64_t t0 = tsc::now();
    uint64_t done = 0;
    uint32_t max_tid = 0;
    while (done < n) {
        gate g;
        thread* t[wave];
        for (int i = 0; i < wave; i++) {
            t[i] = threads::create("worker", worker, &g, 16 * 1024);
            if (!t[i]) {
                kprintf("threads: create failed after %lu threads\n", done);
                return 1;
            }
            if (t[i]->id > max_tid) {
                max_tid = t[i]->id;
            }
        }
        for (int i = 0; i < wave; i++) {
            threads::join(t[i]);
        }
        done += wave;
    }
    uint64_t us = tsc::to_us(tsc::now() - t0);
    kprintf("threads: %lu threads created and joined in %lu us (%lu per second), highest tid %u\n", done,
            us, us ? done * 1000000 / us : 0, max_tid);
    // Page tables made by guard-page splits stay (they map memory, not leak it).
    long leaked_pages = long(free0) - long(pages::free_pages() + paging::table_pages());
    long leaked_heap = long(heap::bytes_in_use()) - long(heap0);
    kprintf("threads: pages leaked %ld, heap bytes leaked %ld\n", leaked_pages, leaked_heap);
    return leaked_pages == 0 && leaked_heap == 0 ? 0 : 1;
}

}  // namespace

REGISTER_APP(threads_app, "threads", "[N]  create and join N short-lived threads (stress)", threads_main);
