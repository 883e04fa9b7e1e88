#include "net/netif.hh"

#include <atomic>

#include "core/console.hh"
#include "core/mutex.hh"
#include "generated/tracepoints.hh"
#include "net/arp.hh"
#include "net/channel.hh"
#include "net/classify.hh"
#include "net/icmp.hh"
#include "net/ipv4.hh"
#include "net/netdev.hh"

namespace net::netif {
namespace {

iface cfg = {{}, ipv4_addr(10, 0, 2, 15), ipv4_addr(255, 255, 255, 0), ipv4_addr(10, 0, 2, 2)};
std::atomic<bool> is_up{false};
mutex up_lock;
const netdev::ops* dev;  // written before is_up is set, then never again

// Written by the receive thread only (rx .. default_path), or by any sender (tx, dropped).
std::atomic<uint64_t> n_rx, n_channel, n_default, n_dropped, n_tx;
std::atomic<unsigned> drops_told{0};
constexpr unsigned drops_to_tell = 5;

void bump(std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

// Frames with no channel: ARP, ICMP, and datagrams to ports nobody has bound.
void default_path(pbuf* p)
{
    bump(n_default);
    if (ntoh16(eth(p)->type) == ethertype_arp) {
        arp_input(p);
        return;
    }
    switch (ip(p)->proto) {
    case ipproto_icmp:
        icmp_input(p);
        return;
    case ipproto_udp:
        count_drop(p, "udp: no socket bound to the port");
        return;
    default:
        count_drop(p, "ipv4: protocol not handled");
        return;
    }
}

}  // namespace

const iface& config() { return cfg; }

bool up()
{
    if (is_up.load(std::memory_order_acquire)) {
        return true;
    }
    lock_guard g(up_lock);
    if (is_up.load(std::memory_order_relaxed)) {
        return true;
    }
    // The first registered device that starts is the interface's.
    for (const netdev::ops* const* d = netdev::first(); d < netdev::last() && !dev; d++) {
        if ((*d)->start(cfg.mac)) {
            dev = *d;
        }
    }
    if (!dev) {
        if (netdev::first() == netdev::last()) {
            kprintf("net: no network driver in this kernel\n");
        }
        return false;
    }
    is_up.store(true, std::memory_order_release);
    kprintf("net: %02x:%02x:%02x:%02x:%02x:%02x ip %u.%u.%u.%u/24 gateway %u.%u.%u.%u\n", cfg.mac[0], cfg.mac[1],
            cfg.mac[2], cfg.mac[3], cfg.mac[4], cfg.mac[5], cfg.ip >> 24, cfg.ip >> 16 & 0xff, cfg.ip >> 8 & 0xff,
            cfg.ip & 0xff, cfg.gateway >> 24, cfg.gateway >> 16 & 0xff, cfg.gateway >> 8 & 0xff, cfg.gateway & 0xff);
    // Learn the gateway's MAC before anyone needs it (its reply lands in the ARP table).
    arp_request(cfg.gateway);
    return true;
}

void input(pbuf* p)
{
    bump(n_rx);
    channel* ch;
    classify_result r = classify(p, &ch);
    trace_net_classify(ch, p->packet, uint8_t(r));
    switch (r) {
    case classify_result::channel:
        bump(n_channel);
        ch->push(p);
        return;
    case classify_result::default_path:
        default_path(p);
        return;
    case classify_result::drop:
        count_drop(p, "not for us or malformed");
        return;
    }
}

void output(pbuf* p)
{
    bump(n_tx);
    dev->transmit(p);
}

void count_drop(pbuf* p, const char* why)
{
    bump(n_dropped);
    if (drops_told.fetch_add(1, std::memory_order_relaxed) < drops_to_tell) {
        kprintf("net: dropped packet %u (%u bytes): %s\n", p->packet, p->len, why);
    }
    pbuf_free(p);
}

stats counters()
{
    return {n_rx.load(std::memory_order_relaxed), n_channel.load(std::memory_order_relaxed),
            n_default.load(std::memory_order_relaxed), n_dropped.load(std::memory_order_relaxed),
            n_tx.load(std::memory_order_relaxed)};
}

void print_counters(const char* who)
{
    stats s = counters();
    kprintf("%s: net: %lu frames in (%lu to channels, %lu default path), %lu dropped, %lu frames out, "
            "%lu packet buffers in use\n",
            who, s.rx, s.to_channel, s.default_path, s.dropped, s.tx, pbufs_in_use());
}

}  // namespace net::netif
