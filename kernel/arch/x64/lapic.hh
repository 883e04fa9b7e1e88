// The local APIC (xAPIC, memory-mapped at 0xfee00000) and its timer, used in
// one-shot mode: the timer code programs the next deadline (nearest timer or
// end of the time slice), so an idle CPU takes no periodic ticks.
#pragma once

#include <stdint.h>

namespace lapic {

void init();  // enable, mask LINT0, spurious and error vectors; timer masked
void eoi();
uint32_t id();
uint32_t read_esr();

// Timer counts at the rate measured by calibrate_start/calibrate_end (in the
// PIT window of tsc::calibrate).
void calibrate_start();
uint32_t calibrate_end();  // counts elapsed since calibrate_start

void timer_enable();  // after calibration: one-shot mode, unmasked, stopped

void timer_oneshot(uint32_t count);  // count >= 1
void timer_stop();

// Inter-processor interrupts (physical destination = APIC id).
void send_ipi(uint32_t apic_id, uint8_t vector);
void send_init(uint32_t apic_id);
void send_startup(uint32_t apic_id, uint32_t page);  // SIPI: the AP starts in real mode at page * 4096

}  // namespace lapic
