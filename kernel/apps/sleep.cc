// sleep MS: sleeps and reports how long it actually slept (timer accuracy).
#include "core/app.hh"
#include "core/console.hh"
#include "core/thread.hh"
#include "lib/string.hh"
#include "tsc.hh"

namespace {

int sleep_main(int argc, char** argv)
{
    uint64_t ms = 0;
    if (argc != 2 || !parse_u64(argv[1], strlen(argv[1]), &ms)) {
        kprintf("usage: sleep MS\n");
        return 2;
    }
    uint64_t t0 = tsc::now();
    threads::sleep_ns(ms * 1000000);
    uint64_t us = tsc::to_us(tsc::now() - t0);
    kprintf("sleep: asked %lu ms, slept %lu.%03lu ms\n", ms, us / 1000, us % 1000);
    return 0;
}

}  // namespace

REGISTER_APP(sleep_app, "sleep", "MS  sleep MS milliseconds", sleep_main);
