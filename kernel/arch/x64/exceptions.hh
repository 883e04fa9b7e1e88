// CPU exceptions. None is recoverable yet: each prints what happened (vector,
// error code, faulting address, registers, backtrace) and ends the VM as a
// panic.
#pragma once

#include "interrupts.hh"

[[noreturn]] void exception_panic(arch::interrupt_frame* f);
