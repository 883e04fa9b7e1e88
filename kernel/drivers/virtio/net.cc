#include "drivers/virtio/net.hh"

#include <atomic>

#include "core/console.hh"
#include "core/event.hh"
#include "core/thread.hh"
#include "drivers/virtio/virtio.hh"
#include "drivers/virtio/virtqueue.hh"
#include "generated/tracepoints.hh"
#include "lib/mpsc_queue.hh"
#include "lib/string.hh"
#include "net/netdev.hh"
#include "net/netif.hh"
#include "tsc.hh"

namespace virtio_net {

// The per-frame header of the legacy interface without MRG_RXBUF (virtio
// 1.x 5.1.6). All zero on transmit: no checksum offload, no segmentation.
struct __attribute__((packed)) net_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
};
static_assert(sizeof(net_hdr) == 10, "legacy virtio_net_hdr is 10 bytes");
static_assert(sizeof(net_hdr) == net::dev_hdr_max, "pbuf leaves room for it");

namespace {

using net::pbuf;

constexpr uint32_t f_mac = 1u << 5;  // the device has a MAC address in its config space
constexpr unsigned q_rx = 0, q_tx = 1;
constexpr unsigned rx_cpu = 0;
// Descriptors per frame: the header and the frame, each its own (legacy
// devices without ANY_LAYOUT expect the header alone in the first).
constexpr unsigned descs_per_frame = 2;
// Receive buffers kept posted: enough for a burst of a few ms at the rates
// TCG reaches, without tying up megabytes (the ring may be 1024 entries deep).
constexpr unsigned rx_buffers = 256;
// Frames handed on per turn before the receive thread lets the CPU go: a
// consumer on the same CPU then drains its channel before the next batch
// instead of watching it overflow (channel.hh: a full channel drops).
constexpr unsigned rx_batch = 64;

struct pbuf_link {
    static pbuf*& next(pbuf* p) { return p->next; }
};

struct device {
    virtio::transport* t = nullptr;
    virtio::virtqueue rxq, txq;
    event work;   // the receive thread's: interrupts (frames in, transmit space)
    event ready;  // the starter's: set-up finished (ok says how)
    bool ok = false;
    uint8_t mac[6] = {};
    unsigned rx_posted = 0;  // receive thread only
    lockfree::mpsc_queue<pbuf, pbuf_link> tx_pending;
    // NOTE: the combining flag. Whoever swaps it from false to true is the
    // only thread touching txq and popping tx_pending until it stores false
    // (release); the next holder's exchange (acquire) sees all it did.
    std::atomic<bool> tx_busy{false};
};

device* dev;

void on_interrupt(void* arg)
{
    auto* d = static_cast<device*>(arg);
    d->t->ack_interrupt();
    d->work.signal();
}

// Only the holder of tx_busy.
void tx_reclaim(device* d)
{
    void* tok;
    uint32_t len;
    while (d->txq.get_used(&tok, &len)) {
        net::pbuf_free(static_cast<pbuf*>(tok));
    }
}

// Moves queued frames into the transmit ring; see net.hh for the protocol.
void tx_pump(device* d)
{
    for (;;) {
        if (d->tx_busy.exchange(true, std::memory_order_acquire)) {
            return;  // the holder re-checks the queue after letting go
        }
        tx_reclaim(d);
        bool added = false;
        while (d->txq.free_descriptors() >= descs_per_frame) {
            pbuf* p = d->tx_pending.pop();
            if (!p) {
                break;
            }
            memset(p->dev_hdr, 0, sizeof p->dev_hdr);
            virtio::piece out[2] = {{p->dev_hdr, sizeof(net_hdr)}, {p->frame, p->len}};
            trace_net_tx(p->packet, p->len);
            trace_net_packet(p->packet, p->len, 1, p->frame, p->len);
            d->txq.add(out, 2, nullptr, 0, p);
            added = true;
        }
        if (added) {
            d->txq.kick_if_needed();
        }
        bool blocked = !d->tx_pending.empty();
        if (blocked) {
            d->txq.enable_interrupts();  // the device's interrupt brings the receive thread back here
        } else {
            d->txq.disable_interrupts();
        }
        d->tx_busy.store(false, std::memory_order_release);
        // NOTE: store-load ordering: a sender that pushed while we held the
        // flag and failed to take it must find its frame seen here.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (d->tx_pending.empty() || (blocked && !d->txq.has_used())) {
            return;
        }
    }
}

// Keeps the receive ring full of empty buffers. Receive thread only.
void rx_refill(device* d)
{
    bool added = false;
    while (d->rx_posted < rx_buffers && d->rxq.free_descriptors() >= descs_per_frame) {
        pbuf* p = net::pbuf_alloc();
        if (!p) {
            break;  // no memory now: the loop retries after a short sleep if the ring runs dry
        }
        virtio::piece in[2] = {{p->dev_hdr, sizeof(net_hdr)}, {p->frame, sizeof p->frame}};
        d->rxq.add(nullptr, 0, in, 2, p);
        d->rx_posted++;
        added = true;
    }
    if (added) {
        d->rxq.kick_if_needed();
    }
}

// Returns whether frames were left for the next turn.
bool rx_drain(device* d)
{
    void* tok;
    uint32_t len;
    for (unsigned n = 0;; n++) {
        if (n == rx_batch) {
            return d->rxq.has_used();
        }
        if (!d->rxq.get_used(&tok, &len)) {
            return false;
        }
        auto* p = static_cast<pbuf*>(tok);
        d->rx_posted--;
        if (len <= sizeof(net_hdr)) {
            net::netif::count_drop(p, "virtio-net: empty frame");
            continue;
        }
        p->len = uint16_t(len - sizeof(net_hdr));
        p->packet = net::next_packet_id();
        p->rx_tsc = tsc::now();
        trace_net_rx(p->packet, p->len, q_rx);
        trace_net_packet(p->packet, p->len, 0, p->frame, p->len);
        net::netif::input(p);
    }
}

bool setup(device* d)
{
    virtio::transport* t = d->t;
    uint32_t features = t->host_features();
    t->set_guest_features(features & f_mac);
    if (features & f_mac) {
        uint32_t lo = t->config32(0), hi = t->config32(4);
        memcpy(d->mac, &lo, 4);
        memcpy(d->mac + 4, &hi, 2);
    } else {
        static const uint8_t fallback[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};  // QEMU's default
        memcpy(d->mac, fallback, 6);
    }
    // NOTE: before the queues: on PCI, MSI-X changes where the queue vector registers are.
    if (!t->setup_interrupt(on_interrupt, d)) {
        kprintf("virtio-net: %s: no interrupt route (MSI-X or I/O APIC)\n", t->name());
        return false;
    }
    auto init_queue = [t](virtio::virtqueue* q, unsigned idx) {
        uint16_t size = t->queue_max(idx);
        if (size > virtio::virtqueue::max_size) {
            size = virtio::virtqueue::max_size;
        }
        if (!q->init(t, idx, size)) {
            kprintf("virtio-net: %s: cannot set up queue %u (size %u)\n", t->name(), idx, size);
            return false;
        }
        return true;
    };
    if (!init_queue(&d->rxq, q_rx) || !init_queue(&d->txq, q_tx)) {
        return false;
    }
    d->txq.disable_interrupts();  // until a full ring needs the device to say it made room
    t->set_status(virtio::status_acknowledge | virtio::status_driver | virtio::status_driver_ok);
    rx_refill(d);
    if (!d->rx_posted) {
        kprintf("virtio-net: no memory for receive buffers\n");
        return false;
    }
    return true;
}

void rx_thread(void* arg)
{
    auto* d = static_cast<device*>(arg);
    bool ok = setup(d);
    if (ok) {
        // Published before anything can be received: the default path
        // (ARP, ICMP) transmits from this thread.
        __atomic_store_n(&dev, d, __ATOMIC_RELEASE);
    } else {
        d->t->set_status(virtio::status_failed);
    }
    d->ok = ok;
    d->ready.signal();
    if (!ok) {
        return;
    }
    for (;;) {
        d->rxq.disable_interrupts();
        bool more = rx_drain(d);
        rx_refill(d);
        tx_pump(d);
        if (more) {
            threads::yield();  // the consumers we just fed run first when they share this CPU
            continue;
        }
        if (d->rxq.enable_interrupts()) {
            continue;  // frames came in meanwhile
        }
        if (!d->rx_posted) {
            threads::sleep_ns(1000000);  // out of buffers and memory: try again in 1 ms
            continue;
        }
        d->work.wait();
    }
}

}  // namespace

bool start(uint8_t* mac)
{
    if (device* d = __atomic_load_n(&dev, __ATOMIC_ACQUIRE)) {
        memcpy(mac, d->mac, 6);
        return true;
    }
    virtio::transport* t = virtio::probe(virtio::type_net, 0);
    if (!t) {
        kprintf("virtio-net: no device (QEMU: -netdev user,id=n0 -device virtio-net-{pci,device},netdev=n0; "
                "osvtrace: --net user)\n");
        return false;
    }
    auto* d = new device;
    d->t = t;
    if (!threads::create_on(rx_cpu, "net-rx", rx_thread, d)) {
        kprintf("virtio-net: cannot create the receive thread\n");
        return false;
    }
    d->ready.wait();
    if (!d->ok) {
        return false;
    }
    memcpy(mac, d->mac, 6);
    return true;
}

void transmit(pbuf* p)
{
    device* d = __atomic_load_n(&dev, __ATOMIC_ACQUIRE);
    d->tx_pending.push(p);
    tx_pump(d);
}

}  // namespace virtio_net

namespace {
const net::netdev::ops virtio_net_dev = {"virtio-net", virtio_net::start, virtio_net::transmit};
}  // namespace

REGISTER_NETDEV(virtio_net_dev);
