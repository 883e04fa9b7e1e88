#include "drivers/console.hh"

#include "core/klog.hh"
#include "cpu.hh"
#include "lib/printf.hh"
#include "serial.hh"

namespace console {

void init() { serial::init(); }

void write(const char* s, size_t n)
{
    irq_guard g;
    klog::append(s, n);
    serial::write(s, n);
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
