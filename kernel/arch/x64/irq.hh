// Device interrupts: vectors handed out to drivers, and their dispatch.
//
// NOTE: handlers run with interrupts off, on whichever CPU took the
// interrupt, and do the minimum: acknowledge the device and wake the thread
// that does the work (kernel rule: no spinlocks, so no real work here).
#pragma once

#include <stdint.h>

namespace irq {

using handler_fn = void (*)(void* arg);

// Reserves a free vector for a device and installs its handler. Returns 0
// when none is left. Boot or thread context, before the device may raise it.
uint8_t alloc_vector(handler_fn fn, void* arg);

// From interrupt_dispatch: runs the handler of a device vector and sends the
// LAPIC its EOI. False if no device owns the vector.
bool dispatch(uint8_t vector);

}  // namespace irq
