#include "drivers/virtio/virtqueue.hh"

#include "core/heap.hh"
#include "core/page_alloc.hh"
#include "drivers/virtio/virtio.hh"
#include "lib/string.hh"

namespace virtio {
namespace {

constexpr size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

// Device-visible stores must be complete before the index that publishes
// them (and the other way round for reads). x86 keeps store order and load
// order; this stops the compiler from reordering.
inline void barrier() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

}  // namespace

size_t virtqueue::bytes_for(uint16_t n)
{
    size_t rings = sizeof(vring_desc) * n + sizeof(vring_avail) + 2 * n + 2;
    return align_up(rings, queue_align) + align_up(sizeof(vring_used) + sizeof(vring_used_elem) * n + 2, queue_align);
}

bool virtqueue::init(transport* t, unsigned index, uint16_t size)
{
    if (!size || size > max_size || (size & (size - 1))) {
        return false;
    }
    size_t bytes = bytes_for(size);
    auto* mem = static_cast<uint8_t*>(pages::alloc(bytes / pages::page_size));
    if (!mem) {
        return false;
    }
    memset(mem, 0, bytes);
    tokens_ = static_cast<void**>(calloc(size, sizeof(void*)));
    if (!tokens_) {
        pages::free(mem, bytes / pages::page_size);
        return false;
    }
    t_ = t;
    index_ = index;
    size_ = size;
    desc_ = reinterpret_cast<vring_desc*>(mem);
    avail_ = reinterpret_cast<vring_avail*>(mem + sizeof(vring_desc) * size);
    used_ = reinterpret_cast<vring_used*>(
        mem + align_up(sizeof(vring_desc) * size + sizeof(vring_avail) + 2 * size + 2, queue_align));
    for (uint16_t i = 0; i < size; i++) {
        desc_[i].next = uint16_t(i + 1);
    }
    free_head_ = 0;
    nfree_ = size;
    last_used_ = 0;
    if (!t->queue_setup(index, size, reinterpret_cast<uint64_t>(mem))) {
        pages::free(mem, bytes / pages::page_size);
        desc_ = nullptr;
        return false;
    }
    return true;
}

bool virtqueue::add(const piece* out, unsigned nout, const piece* in, unsigned nin, void* token)
{
    unsigned n = nout + nin;
    if (n == 0 || n > nfree_) {
        return false;
    }
    uint16_t head = free_head_;
    uint16_t i = head;
    uint16_t last = head;
    for (unsigned k = 0; k < n; k++) {
        const piece& p = k < nout ? out[k] : in[k - nout];
        vring_desc& d = desc_[i];
        d.addr = reinterpret_cast<uint64_t>(p.addr);
        d.len = p.len;
        d.flags = uint16_t((k < nout ? 0 : desc_f_write) | (k + 1 < n ? desc_f_next : 0));
        last = i;
        i = d.next;
    }
    free_head_ = desc_[last].next;
    nfree_ = uint16_t(nfree_ - n);
    tokens_[head] = token;
    uint16_t idx = avail_->idx;
    avail_->ring[idx & (size_ - 1)] = head;
    barrier();
    __atomic_store_n(&avail_->idx, uint16_t(idx + 1), __ATOMIC_RELEASE);
    return true;
}

void virtqueue::kick()
{
    barrier();
    t_->notify(index_);
}

void virtqueue::kick_if_needed()
{
    barrier();  // our avail index must be visible before we read the device's flag
    if (!(used_->flags & used_f_no_notify)) {
        t_->notify(index_);
    }
}

bool virtqueue::has_used() const { return __atomic_load_n(&used_->idx, __ATOMIC_ACQUIRE) != last_used_; }

bool virtqueue::get_used(void** token, uint32_t* len)
{
    if (!has_used()) {
        return false;
    }
    barrier();
    const volatile vring_used_elem& e = used_->ring[last_used_ & (size_ - 1)];
    uint16_t head = uint16_t(e.id);
    *len = e.len;
    last_used_++;
    *token = tokens_[head];
    // Put the chain back on the free list.
    uint16_t i = head;
    unsigned n = 1;
    while (desc_[i].flags & desc_f_next) {
        i = desc_[i].next;
        n++;
    }
    desc_[i].next = free_head_;
    free_head_ = head;
    nfree_ = uint16_t(nfree_ + n);
    return true;
}

void virtqueue::disable_interrupts() { avail_->flags = avail_f_no_interrupt; }

bool virtqueue::enable_interrupts()
{
    avail_->flags = 0;
    barrier();  // the device must see the flag before we look at its index
    return has_used();
}

}  // namespace virtio
