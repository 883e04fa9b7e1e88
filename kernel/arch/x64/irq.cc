#include "irq.hh"

#include "lapic.hh"

namespace irq {
namespace {

// Device vectors sit between the remapped legacy PICs and the LAPIC's own
// (timer, IPIs, error, spurious at 0xf0 and up).
constexpr uint8_t first_vector = 0x40;
constexpr uint8_t last_vector = 0xdf;

struct entry {
    handler_fn fn;
    void* arg;
};

entry table[256];
// NOTE: vectors are handed out once and never taken back: the fields of an
// entry are written before its vector is returned (and so before a device
// can be told about it); the interrupt path only reads.
uint8_t next_vector = first_vector;

}  // namespace

uint8_t alloc_vector(handler_fn fn, void* arg)
{
    uint8_t v = __atomic_fetch_add(&next_vector, 1, __ATOMIC_RELAXED);
    if (v < first_vector || v > last_vector) {
        return 0;
    }
    table[v].arg = arg;
    __atomic_store_n(&table[v].fn, fn, __ATOMIC_RELEASE);
    return v;
}

bool dispatch(uint8_t vector)
{
    handler_fn fn = __atomic_load_n(&table[vector].fn, __ATOMIC_ACQUIRE);
    if (!fn) {
        return false;
    }
    fn(table[vector].arg);
    lapic::eoi();
    return true;
}

}  // namespace irq
