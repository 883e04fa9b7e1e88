#include "net/channel.hh"

#include "generated/tracepoints.hh"

namespace net {

bool channel::push(pbuf* p)
{
    uint32_t depth = 0;
    uint32_t id = p->packet;
    if (!ring_.push(p, &depth)) {
        trace_net_channel_drop(this, id, depth);
        drops_.store(drops_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        pbuf_free(p);
        return false;
    }
    // NOTE: p belongs to the consumer from here on: only its id (read above)
    // may still be used.
    trace_net_channel_push(this, id, depth);
    // Always signal: a signal with nobody waiting is a store and a load. A
    // "was it empty?" shortcut would read the consumer's index, which may be
    // stale, and a stale read here is a consumer asleep on a full channel.
    ready_.signal();
    return true;
}

pbuf* channel::pop()
{
    pbuf* p;
    uint32_t depth;
    if (!ring_.pop(&p, &depth)) {
        return nullptr;
    }
    trace_net_channel_pop(this, p->packet, depth);
    return p;
}

pbuf* channel::wait_pop()
{
    for (;;) {
        if (closed()) {
            // Whatever is still queued is ours to free (we are the consumer).
            pbuf* p;
            while (ring_.pop(&p)) {
                pbuf_free(p);
            }
            return nullptr;
        }
        if (pbuf* p = pop()) {
            return p;
        }
        // NOTE: event::wait consumes a pending signal, so a push between the
        // empty pop above and this wait still ends the wait at once.
        ready_.wait();
    }
}

void channel::close()
{
    closed_.store(true, std::memory_order_release);
    ready_.signal();
}

}  // namespace net
