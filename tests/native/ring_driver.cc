// Drives the kernel's ring writer on the host and dumps what a reader would
// capture, so the Python decoder can be checked against the real writer.
//
// usage: ring_driver MODE RING_SLOTS RECORDS OUT
//   MODE overwrite: write RECORDS mixed records, dump the ring like a snapshot
//   MODE stream:    a reader thread drains slowly into OUT; the writer never blocks
// OUT holds chunks: u32 cpu, u32 nslots, u64 first_seq, u64 lost_total, then slots.
// Prints "emitted N" (records the writer was asked to write) on stdout.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <thread>
#include <atomic>
#include <vector>

#include "generated/tracepoints.hh"
#include "host_ring.hh"

static void dump(FILE* f, trace::ring* r, uint64_t from, uint64_t to) {
    uint32_t hdr[2] = {0, uint32_t(to - from)};
    uint64_t h2[2] = {from, r->lost};
    fwrite(hdr, sizeof hdr, 1, f);
    fwrite(h2, sizeof h2, 1, f);
    for (uint64_t i = from; i < to; i++) {
        fwrite(&r->slots()[i & r->mask], trace::slot_size, 1, f);
    }
}

int main(int argc, char** argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: ring_driver overwrite|stream RING_SLOTS RECORDS OUT\n");
        return 2;
    }
    bool stream = strcmp(argv[1], "stream") == 0;
    uint64_t nslots = strtoull(argv[2], nullptr, 0);
    uint64_t records = strtoull(argv[3], nullptr, 0);
    FILE* out = fopen(argv[4], "wb");
    trace_platform::fake_clock = 1000;  // the deterministic clock starts past zero
    static trace::ring r;
    std::vector<trace::header_slot> mem(nslots);
    use_ring(r, mem.data(), nslots, stream ? trace::ring_mode::stream : trace::ring_mode::overwrite);
    for (unsigned i = 0; i <= trace::tp_max; i++) {
        trace::enabled[i] = 1;
    }
    std::atomic<bool> done{false};
    std::thread reader;
    if (stream) {
        reader = std::thread([&] {
            for (;;) {
                bool last = done.load(std::memory_order_acquire);
                uint64_t c = __atomic_load_n(&r.committed, __ATOMIC_ACQUIRE);
                uint64_t t = r.tail;
                if (c > t) {
                    dump(out, &r, t, c);
                    __atomic_store_n(&r.tail, c, __ATOMIC_RELEASE);
                }
                if (last && c == t) {
                    dump(out, &r, c, c);  // an empty chunk carries the final lost count
                    break;
                }
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            }
        });
    }
    uint8_t pkt[128];
    for (unsigned i = 0; i < sizeof pkt; i++) {
        pkt[i] = uint8_t(i);
    }
    for (uint64_t i = 0; i < records; i++) {
        switch (i % 4) {
        case 0: trace_sched_switch(uint32_t(i), 2); break;
        case 1: trace_mutex_handoff(reinterpret_cast<void*>(0x1000 + i), 7, uint32_t(i)); break;
        case 2: trace_thread_create(uint32_t(i), "a-thread-name"); break;
        case 3: trace_net_packet(uint32_t(i), 128, 0, pkt, sizeof pkt); break;
        }
    }
    if (stream) {
        done.store(true, std::memory_order_release);
        reader.join();
    } else {
        uint64_t c = r.committed;
        uint64_t from = c > nslots ? c - nslots : 0;
        dump(out, &r, from, c);
    }
    fclose(out);
    printf("emitted %llu lost %llu pending %llu\n", (unsigned long long)records, (unsigned long long)r.lost,
           (unsigned long long)r.pending_lost);
    return 0;
}
