#include "net/pbuf.hh"

#include <atomic>

#include "core/heap.hh"

namespace net {
namespace {

std::atomic<uint64_t> in_use{0};
// NOTE: ids are taken by the receive thread (one per frame) and, rarely, by
// a socket sending a datagram that answers nothing; relaxed is enough for a
// unique number.
std::atomic<uint32_t> last_id{0};

}  // namespace

pbuf* pbuf_alloc()
{
    // The heap's 2 KiB class: per-CPU free lists first, so a buffer freed by
    // a consumer is reused on that CPU for its next reply.
    auto* p = static_cast<pbuf*>(malloc(sizeof(pbuf)));
    if (!p) {
        return nullptr;
    }
    p->next = nullptr;
    p->packet = 0;
    p->len = 0;
    p->l4 = 0;
    p->rx_tsc = 0;
    in_use.fetch_add(1, std::memory_order_relaxed);
    return p;
}

void pbuf_free(pbuf* p)
{
    if (p) {
        in_use.fetch_sub(1, std::memory_order_relaxed);
        free(p);
    }
}

uint64_t pbufs_in_use() { return in_use.load(std::memory_order_relaxed); }

uint32_t next_packet_id()
{
    uint32_t id = last_id.fetch_add(1, std::memory_order_relaxed) + 1;
    return id ? id : last_id.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace net
