#include "core/console.hh"

#include "core/klog.hh"
#include "core/mutex.hh"
#include "core/percpu.hh"
#include "cpu.hh"
#include "lib/printf.hh"
#include "serial.hh"

namespace console {

namespace {
// Keeps one message's bytes together on the serial line when threads on
// several CPUs print. A sleepable mutex, so only where blocking is allowed:
// thread context with interrupts on and not an idle thread. Elsewhere (boot,
// panics, interrupt handlers) the bytes go out directly and may interleave.
mutex serial_lock;

bool may_block()
{
    if (!arch::irqs_enabled()) {
        return false;
    }
    cpu* c = this_cpu();
    return c->current && c->current != c->idle;
}
}  // namespace

void init() { serial::init(); }

void write(const char* s, size_t n)
{
    klog::append(s, n);
    if (may_block()) {
        lock_guard g(serial_lock);
        serial::write(s, n);
    } else {
        serial::write(s, n);
    }
}

}  // namespace console

int vkprintf(const char* fmt, va_list ap)
{
    // Formatted on the caller's stack, then written in one piece. Longer
    // output is truncated (and says so) rather than split between writers.
    char buf[512];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    size_t len = n < int(sizeof buf) ? size_t(n) : sizeof buf - 1;
    console::write(buf, len);
    if (n >= int(sizeof buf)) {
        console::write("...[truncated]\n", 15);
    }
    return n;
}

int kprintf(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vkprintf(fmt, ap);
    va_end(ap);
    return n;
}
