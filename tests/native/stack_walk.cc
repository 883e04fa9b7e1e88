// The bounded frame-pointer walk (kernel/include/trace/stack.hh) on the host:
//
//   stack_walk cases      walks crafted stacks (a chain ending in 0, one cut by the depth
//                         bound, a loop, a frame below the previous one, a misaligned one,
//                         one outside the bounds) and prints "NAME DEPTH END F0 F1 ..."
//   stack_walk emit OUT   a real chain stack_f1 -> stack_f2 -> stack_f3 records
//                         mutex_lock_wait with its stack into a ring, dumped to OUT like
//                         ring_driver's; prints the three functions' addresses
#include <stdio.h>
#include <string.h>

#include <vector>

#include "generated/tracepoints.hh"
#include "host_ring.hh"

namespace {

// A fake stack: frames are (saved fp, return address) pairs at 16-byte steps.
struct fake {
    alignas(16) uint64_t w[64] = {};
    uint64_t at(unsigned i) const { return reinterpret_cast<uint64_t>(&w[i]); }
    void frame(unsigned i, uint64_t next, uint64_t ret) { w[i] = next; w[i + 1] = ret; }
};

void walk(const char* name, const fake& f, uint64_t fp, unsigned max = trace::stack_max_frames)
{
    uint64_t out[trace::stack_max_frames];
    uint8_t end = 0;
    unsigned n = trace::walk_stack(fp, f.at(0), f.at(64), out, max, &end);
    printf("%s %u %u", name, n, end);
    for (unsigned i = 0; i < n; i++) {
        printf(" %llx", (unsigned long long)out[i]);
    }
    printf("\n");
}

int cases()
{
    // a chain of 20 frames, return addresses 0x1000 + i (built in place: frames hold addresses)
    auto chain = [](fake& s) {
        for (unsigned i = 0; i < 40; i += 2) {
            s.frame(i, i + 2 < 40 ? s.at(i + 2) : 0, 0x1000 + i);
        }
    };
    fake f;
    chain(f);
    walk("complete", f, f.at(30));   // 5 frames, then a saved fp of 0
    walk("cut", f, f.at(0));         // 20 frames: cut at 16
    walk("cut_at_3", f, f.at(0), 3);
    fake l;
    chain(l);
    l.frame(4, l.at(0), 0x2004);     // frame 2 points back to frame 0: a loop
    walk("loop", l, l.at(0));
    fake same;
    chain(same);
    same.frame(2, same.at(2), 0x3002);  // a frame pointing at itself
    walk("self", same, same.at(0));
    fake mis;
    chain(mis);
    mis.frame(2, mis.at(4) + 4, 0x4002);  // misaligned next frame
    walk("misaligned", mis, mis.at(0));
    fake out;
    chain(out);
    out.frame(2, 0xdead0000dead0000ull, 0x5002);  // outside the stack
    walk("outside", out, out.at(0));
    walk("null", f, 0);
    walk("top", f, f.at(63));  // a frame whose return address slot is past the bounds
    return 0;
}

}  // namespace

extern "C" {
__attribute__((noinline)) void stack_f3(uint64_t x)
{
    trace_mutex_lock_wait(reinterpret_cast<void*>(x));
    asm volatile("" : : : "memory");
}
__attribute__((noinline)) void stack_f2(uint64_t x)
{
    stack_f3(x + 1);
    asm volatile("" : : : "memory");
}
__attribute__((noinline)) void stack_f1(uint64_t x)
{
    stack_f2(x + 1);
    asm volatile("" : : : "memory");
}
}

int main(int argc, char** argv)
{
    if (argc == 2 && !strcmp(argv[1], "cases")) {
        return cases();
    }
    if (argc != 3 || strcmp(argv[1], "emit")) {
        fprintf(stderr, "usage: stack_walk cases | emit OUT\n");
        return 2;
    }
    static trace::ring r;
    std::vector<trace::header_slot> mem(64);
    use_ring(r, mem.data(), 64, trace::ring_mode::overwrite);
    trace::enabled[trace::tp_mutex_lock_wait] = 2;  // on, with its stack (the runtime's encoding)
    // This thread's stack, roughly: from well below here to a little above main's frame
    // (the C library's frames above it have no frame pointers to follow).
    uint64_t here = reinterpret_cast<uint64_t>(__builtin_frame_address(0));
    trace_platform::stack_lo = here - (1 << 20);
    trace_platform::stack_hi = here + 4096;
    stack_f1(0x1000);
    trace::enabled[trace::tp_mutex_lock_wait] = 1;
    trace_mutex_lock_wait(reinterpret_cast<void*>(0x2000));  // no stack: one slot
    FILE* out = fopen(argv[2], "wb");
    uint32_t hdr[2] = {0, uint32_t(r.committed)};
    uint64_t h2[2] = {0, 0};
    fwrite(hdr, sizeof hdr, 1, out);
    fwrite(h2, sizeof h2, 1, out);
    fwrite(mem.data(), trace::slot_size, r.committed, out);
    fclose(out);
    printf("f1 %llx f2 %llx f3 %llx\n", (unsigned long long)reinterpret_cast<uint64_t>(&stack_f1),
           (unsigned long long)reinterpret_cast<uint64_t>(&stack_f2),
           (unsigned long long)reinterpret_cast<uint64_t>(&stack_f3));
    return 0;
}
