// The net channel's ring (kernel/lib/spsc_ring.hh) on the host: one producer
// thread, one consumer thread, std::thread standing in for the NIC's receive
// thread and a socket's reader. Built by tests/test_spsc_host.py, also under
// ThreadSanitizer: each item points at a plain (non-atomic) payload written by
// the producer before the push and read by the consumer after the pop, so a
// missing release/acquire edge is a reported data race; a lost, duplicated or
// reordered item fails the checks.
//
//   spsc_host N        N items through a ring of 64 (the producer retries when full)
//
// Prints `key value` pairs; exit status 0 when every check holds.
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "lib/spsc_ring.hh"

namespace {

struct payload {
    uint64_t seq;
    uint64_t check;  // seq * a constant: a torn or stale read shows
};

}  // namespace

int main(int argc, char** argv)
{
    const uint64_t n = argc > 1 ? strtoull(argv[1], nullptr, 10) : 1000000;
    static lockfree::spsc_ring<payload*, 64> ring;
    std::vector<payload> items(n);
    uint64_t full = 0, empty = 0, bad = 0, out_of_order = 0, got = 0, max_depth = 0, depth_over = 0;
    std::thread producer([&] {
        for (uint64_t i = 0; i < n; i++) {
            items[i].seq = i;  // plain writes, published by the push
            items[i].check = i * 0x9e3779b97f4a7c15ull;
            uint32_t depth;
            while (!ring.push(&items[i], &depth)) {
                full++;
                if (depth != 64) {
                    depth_over++;  // a failed push must see a full ring
                }
                std::this_thread::yield();
            }
            if (depth < 1 || depth > 64) {
                depth_over++;
            }
        }
    });
    std::thread consumer([&] {
        uint64_t next = 0;
        while (next < n) {
            payload* p;
            uint32_t depth;
            if (!ring.pop(&p, &depth)) {
                empty++;
                std::this_thread::yield();
                continue;
            }
            if (p->seq != next) {
                out_of_order++;
            }
            if (p->check != p->seq * 0x9e3779b97f4a7c15ull) {
                bad++;
            }
            if (depth > max_depth) {
                max_depth = depth;
            }
            next = p->seq + 1;
            got++;
        }
    });
    producer.join();
    consumer.join();
    bool ok = got == n && !bad && !out_of_order && !depth_over && ring.empty() && max_depth < 64;
    printf("items %llu got %llu bad %llu out_of_order %llu depth_errors %llu full %llu empty %llu max_depth %llu\n",
           (unsigned long long)n, (unsigned long long)got, (unsigned long long)bad,
           (unsigned long long)out_of_order, (unsigned long long)depth_over, (unsigned long long)full,
           (unsigned long long)empty, (unsigned long long)max_depth);
    return ok ? 0 : 1;
}
