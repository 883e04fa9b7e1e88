#include "serial.hh"

#include "cpu.hh"

namespace serial {
namespace {

constexpr uint16_t com1 = 0x3f8;
constexpr uint16_t reg_data = 0, reg_ier = 1, reg_fcr = 2, reg_lcr = 3, reg_mcr = 4, reg_lsr = 5;
constexpr uint8_t lsr_thr_empty = 0x20;

void putc(char c)
{
    // QEMU's UART is always ready; a bounded wait keeps a wedged or absent
    // UART from hanging the kernel (a panic must still reach debug-exit).
    for (int i = 0; i < 100000 && !(arch::inb(com1 + reg_lsr) & lsr_thr_empty); i++) {
        arch::cpu_relax();
    }
    arch::outb(com1 + reg_data, uint8_t(c));
}

}  // namespace

void init()
{
    arch::outb(com1 + reg_ier, 0x00);  // no UART interrupts: output is polled
    arch::outb(com1 + reg_lcr, 0x80);  // DLAB on: set the divisor
    arch::outb(com1 + reg_data, 1);    // 115200 baud (meaningless under QEMU, but defined)
    arch::outb(com1 + reg_ier, 0);
    arch::outb(com1 + reg_lcr, 0x03);  // 8N1, DLAB off
    arch::outb(com1 + reg_fcr, 0x07);  // FIFO on, cleared
    arch::outb(com1 + reg_mcr, 0x03);  // DTR | RTS
}

void write(const char* s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            putc('\r');
        }
        putc(s[i]);
    }
}

}  // namespace serial
