// hello: the smallest app; prints its arguments and exits 0.
#include "core/app.hh"
#include "core/console.hh"

namespace {

int hello_main(int argc, char** argv)
{
    kprintf("Hello from osvtrace!\n");
    for (int i = 1; i < argc; i++) {
        kprintf("  argv[%d] = %s\n", i, argv[i]);
    }
    return 0;
}

}  // namespace

REGISTER_APP(hello_app, "hello", "[ARGS...]  print a greeting and the arguments", hello_main);
