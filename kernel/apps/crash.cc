// crash KIND: fails on purpose, to test the panic path end to end (message,
// backtrace, QEMU exit status 255). KIND: panic | null | ud | overflow.
#include "core/app.hh"
#include "core/console.hh"
#include "core/panic.hh"
#include "lib/string.hh"

namespace {

__attribute__((noinline)) int recurse(int depth)
{
    volatile char big[4096];
    big[0] = char(depth);
    if (depth > (1 << 30)) {
        return 0;  // never: the stack overflows long before
    }
    return recurse(depth + 1) + big[0];
}

int crash_main(int argc, char** argv)
{
    const char* kind = argc > 1 ? argv[1] : "panic";
    if (!strcmp(kind, "panic")) {
        panic("crash: asked to panic");
    } else if (!strcmp(kind, "null")) {
        return *static_cast<volatile int*>(nullptr);
    } else if (!strcmp(kind, "ud")) {
        asm volatile("ud2");
    } else if (!strcmp(kind, "overflow")) {
        return recurse(0);
    }
    kprintf("usage: crash panic|null|ud|overflow\n");
    return 2;
}

}  // namespace

REGISTER_APP(crash_app, "crash", "panic|null|ud|overflow  fail on purpose (tests the panic path)",
             crash_main);
