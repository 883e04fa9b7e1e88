// Exit status mapping (the host launcher inverts it):
//
//   QEMU runs with -device isa-debug-exit,iobase=0xf4,iosize=0x04. A write of
//   v to port 0xf4 makes QEMU exit with status (v << 1) | 1.
//
//   what happened                        v written     QEMU exit status
//   app returned s, 0 <= s <= 125        s + 1         2s + 3   (s = 0 -> 3)
//   app returned s outside 0..125        126 (s=125)   253
//   kernel refused to start the app      126 (s=125)   253   (bad command line,
//                                                            unknown app; the console says why)
//   kernel panic                         127           255
//
//   Host side: rc odd and 3 <= rc <= 253 -> app status (rc - 3) / 2; rc 255 ->
//   panic. QEMU's own errors give 1, and a triple fault under -no-reboot 0;
//   neither can come from this mapping (v = 0 is never written).
#include "debug_exit.hh"

#include "cpu.hh"

namespace debug_exit {
namespace {

constexpr uint16_t port = 0xf4;
constexpr uint32_t v_panic = 127;

[[noreturn]] void write_and_stop(uint32_t v)
{
    arch::irq_disable();
    arch::outl(port, v);
    // Still here: QEMU runs without isa-debug-exit. A triple fault ends the VM
    // under -no-reboot (status 0), which is better than hanging a test run.
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } empty_idt = {0, 0};
    asm volatile("lidt %0; int3" : : "m"(empty_idt));
    arch::halt_forever();
}

}  // namespace

void exit_status(int status)
{
    if (status < 0 || status > max_app_status) {
        status = max_app_status;
    }
    write_and_stop(uint32_t(status) + 1);
}

void exit_panic() { write_and_stop(v_panic); }

}  // namespace debug_exit
