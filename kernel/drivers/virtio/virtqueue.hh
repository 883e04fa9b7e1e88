// A virtio split virtqueue in the legacy layout: descriptor table, then the
// available ring, then (at the next 4 KiB) the used ring, all in one
// physically contiguous block the device reads by DMA.
//
// NOTE: one owner. A virtqueue is driven by exactly one thread (the one that
// adds buffers also collects them), so it needs no lock. The interrupt
// handler never touches it; it only wakes the owner.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace virtio {

class transport;

struct vring_desc {
    uint64_t addr;  // guest-physical (== virtual here)
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(vring_desc) == 16, "vring_desc is 16 bytes (virtio spec 2.7.5)");

struct vring_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];  // then u16 used_event (unused: no EVENT_IDX)
};
static_assert(sizeof(vring_avail) == 4, "vring_avail header");

struct vring_used_elem {
    uint32_t id;   // head descriptor of the chain
    uint32_t len;  // bytes the device wrote into it
};
static_assert(sizeof(vring_used_elem) == 8, "vring_used_elem is 8 bytes");

struct vring_used {
    uint16_t flags;
    uint16_t idx;
    vring_used_elem ring[];
};
static_assert(sizeof(vring_used) == 4, "vring_used header");

constexpr uint16_t desc_f_next = 1;
constexpr uint16_t desc_f_write = 2;        // device writes (an rx buffer)
constexpr uint16_t avail_f_no_interrupt = 1;
constexpr uint16_t used_f_no_notify = 1;

// A piece of a buffer: `len` bytes at `addr`.
struct piece {
    const void* addr;
    uint32_t len;
};

class virtqueue {
public:
    static constexpr unsigned max_size = 1024;

    // Bytes of the legacy layout for a queue of n entries.
    static size_t bytes_for(uint16_t n);

    // Allocates the rings and hands them to the device. False on no memory
    // or a device that refuses.
    bool init(transport* t, unsigned index, uint16_t size);
    bool ready() const { return desc_ != nullptr; }

    unsigned size() const { return size_; }
    unsigned free_descriptors() const { return nfree_; }

    // Queues one buffer chain: `nout` pieces for the device to read, then
    // `nin` it may write. `token` comes back from get_used. Returns false if
    // not enough descriptors are free (nothing is queued then).
    bool add(const piece* out, unsigned nout, const piece* in, unsigned nin, void* token);
    // Tells the device about everything added since the last kick.
    void kick();
    // The same, unless the device said it needs no notification (it is
    // already processing the queue: VRING_USED_F_NO_NOTIFY). Saves an exit
    // to the hypervisor per batch on a busy queue.
    void kick_if_needed();

    // The next chain the device has finished with: its token and the bytes
    // the device wrote. False when there is none (yet).
    bool get_used(void** token, uint32_t* len);
    bool has_used() const;

    // Interrupt suppression, for when the owner is not waiting: the device
    // may skip interrupts while disabled. enable returns true if used
    // buffers arrived meanwhile (check before sleeping: none is missed).
    void disable_interrupts();
    bool enable_interrupts();

private:
    transport* t_ = nullptr;
    unsigned index_ = 0;
    uint16_t size_ = 0;
    vring_desc* desc_ = nullptr;
    vring_avail* avail_ = nullptr;
    volatile vring_used* used_ = nullptr;
    uint16_t free_head_ = 0;
    uint16_t nfree_ = 0;
    uint16_t last_used_ = 0;
    void** tokens_ = nullptr;  // per head descriptor: what add() was given
};

}  // namespace virtio
