#include "net/udp.hh"

#include <atomic>

#include "core/mutex.hh"
#include "core/percpu.hh"
#include "lib/string.hh"
#include "net/arp.hh"
#include "net/channel.hh"
#include "net/checksum.hh"
#include "net/ipv4.hh"
#include "net/netif.hh"

namespace net {

struct udp_socket {
    channel ch;
    std::atomic<bool> bound{false};
    uint16_t port = 0;
    // The reader's own: a received buffer kept for the next sendto on this
    // thread, so an echo or a request/reply server allocates nothing per packet.
    pbuf* spare = nullptr;
    std::atomic<thread*> reader{nullptr};  // the thread in recvfrom (set by itself)
    std::atomic<uint16_t> ip_id{0};
    std::atomic<uint64_t> received{0}, sent{0}, bad{0};
};

namespace {

// Ports in use, each with its group of sockets (several with udp_reuseport).
//
// NOTE: writers (bind, close) serialise on bind_lock, a sleepable kernel
// mutex; the receive thread reads without it. A group's port is set once and
// never cleared; a socket slot is published with a release store after the
// socket is ready and set to nullptr on close; `n` (slots in use) only grows.
constexpr unsigned max_ports = 64;
constexpr unsigned max_group = 16;

struct port_group {
    std::atomic<uint16_t> port{0};  // 0: free entry
    bool exclusive = false;         // bound without udp_reuseport (writers only)
    std::atomic<uint32_t> n{0};
    std::atomic<udp_socket*> socks[max_group] = {};
};

port_group groups[max_ports];

// Sockets come from a static table (a channel is cache-line aligned, and
// they are never freed anyway: udp.hh).
constexpr unsigned max_sockets = 128;
udp_socket sockets[max_sockets];
std::atomic<unsigned> sockets_used{0};
mutex bind_lock;

unsigned port_slot(uint16_t port) { return (port * 40503u) >> 10 & (max_ports - 1); }

// The group of `port`, or nullptr. With `create`, a free entry is claimed
// (writers only, under bind_lock).
port_group* find_group(uint16_t port, bool create)
{
    for (unsigned i = 0, k = port_slot(port); i < max_ports; i++, k = (k + 1) & (max_ports - 1)) {
        uint16_t p = groups[k].port.load(std::memory_order_acquire);
        if (p == port) {
            return &groups[k];
        }
        if (p == 0) {
            if (!create) {
                return nullptr;  // probing stops at the first never-used entry
            }
            groups[k].port.store(port, std::memory_order_release);
            return &groups[k];
        }
    }
    return nullptr;
}

uint32_t flow_hash(uint32_t src, uint16_t sport)
{
    uint32_t h = (src ^ (uint32_t(sport) << 16 | sport)) * 2654435761u;
    return h ^ (h >> 15);
}

// UDP length and checksum (the IPv4 header checksum too): the consumer's work.
bool datagram_ok(pbuf* p)
{
    ipv4_hdr* h = ip(p);
    auto* u = reinterpret_cast<udp_hdr*>(p->frame + p->l4);
    unsigned ulen = ntoh16(u->len);
    if (ulen < sizeof(udp_hdr) || p->l4 + ulen > p->len || !ipv4_checksum_ok(p)) {
        return false;
    }
    if (u->csum == 0) {
        return true;  // the sender did not compute one (allowed over IPv4)
    }
    uint64_t sum = csum_pseudo(h->src, h->dst, ipproto_udp, uint16_t(ulen));
    return csum_fold(csum_add(sum, u, ulen)) == 0;
}

}  // namespace

udp_socket* udp_open()
{
    unsigned i = sockets_used.fetch_add(1, std::memory_order_relaxed);
    if (i >= max_sockets) {
        sockets_used.fetch_sub(1, std::memory_order_relaxed);
        return nullptr;
    }
    return &sockets[i];
}

int udp_bind(udp_socket* s, uint16_t port, unsigned flags)
{
    if (!s || !port || s->bound.load(std::memory_order_relaxed) || s->ch.closed()) {
        return udp_invalid;
    }
    lock_guard g(bind_lock);
    port_group* grp = find_group(port, true);
    if (!grp) {
        return udp_in_use;  // every entry taken
    }
    uint32_t n = grp->n.load(std::memory_order_relaxed);
    unsigned live = 0, free_slot = max_group;
    for (unsigned i = 0; i < n; i++) {
        if (grp->socks[i].load(std::memory_order_relaxed)) {
            live++;
        } else if (free_slot == max_group) {
            free_slot = i;
        }
    }
    bool reuse = flags & udp_reuseport;
    if (live && (grp->exclusive || !reuse)) {
        return udp_in_use;
    }
    if (free_slot == max_group) {
        if (n == max_group) {
            return udp_in_use;
        }
        free_slot = n;
    }
    grp->exclusive = !reuse;
    s->port = port;
    s->bound.store(true, std::memory_order_relaxed);
    // Publish the socket, then (if it took a new slot) the slot count: the
    // receive thread reads n, then the slots below it.
    grp->socks[free_slot].store(s, std::memory_order_release);
    if (free_slot == n) {
        grp->n.store(n + 1, std::memory_order_release);
    }
    return 0;
}

channel* udp_lookup(uint32_t src, uint16_t sport, uint16_t dport)
{
    port_group* grp = find_group(dport, false);
    if (!grp) {
        return nullptr;
    }
    uint32_t n = grp->n.load(std::memory_order_acquire);
    if (!n) {
        return nullptr;
    }
    uint32_t start = flow_hash(src, sport) % n;
    for (uint32_t i = 0; i < n; i++) {
        udp_socket* s = grp->socks[(start + i) % n].load(std::memory_order_acquire);
        if (s) {
            return &s->ch;
        }
    }
    return nullptr;
}

int udp_recvfrom(udp_socket* s, void* buf, size_t len, udp_peer* from)
{
    s->reader.store(current_thread(), std::memory_order_relaxed);
    for (;;) {
        pbuf* p = s->ch.wait_pop();
        if (!p) {
            if (s->spare) {
                pbuf_free(s->spare);
                s->spare = nullptr;
            }
            return udp_closed;
        }
        if (!datagram_ok(p)) {
            s->bad.fetch_add(1, std::memory_order_relaxed);
            pbuf_free(p);
            continue;
        }
        ipv4_hdr* h = ip(p);
        auto* u = reinterpret_cast<udp_hdr*>(p->frame + p->l4);
        size_t n = ntoh16(u->len) - sizeof(udp_hdr);
        if (n > len) {
            n = len;
        }
        memcpy(buf, u + 1, n);
        if (from) {
            from->ip = ntoh32(h->src);
            from->port = ntoh16(u->sport);
            from->packet = p->packet;
            from->has_mac = true;
            memcpy(from->mac, eth(p)->src, mac_len);
        }
        s->received.fetch_add(1, std::memory_order_relaxed);
        if (!s->spare) {
            s->spare = p;
        } else {
            pbuf_free(p);
        }
        return int(n);
    }
}

int udp_sendto(udp_socket* s, const void* buf, size_t len, const udp_peer& to)
{
    if (!s->bound.load(std::memory_order_relaxed) || !to.port) {
        return udp_invalid;
    }
    if (len > udp_max_payload) {
        return udp_too_long;
    }
    uint8_t mac[mac_len];
    if (to.has_mac) {
        memcpy(mac, to.mac, mac_len);
    } else if (uint32_t hop = ipv4_next_hop(to.ip); !arp_lookup(hop, mac)) {
        // FIXME: no queue for datagrams waiting on ARP: the caller retries.
        arp_request(hop);
        return udp_no_route;
    }
    // The reader's spare buffer when the reader sends (the common case: a
    // reply), else a fresh one. NOTE: only the reading thread touches spare.
    pbuf* p;
    if (s->spare && s->reader.load(std::memory_order_relaxed) == current_thread()) {
        p = s->spare;
        s->spare = nullptr;
        p->rx_tsc = 0;
    } else if (!(p = pbuf_alloc())) {
        return udp_no_memory;
    }
    p->packet = to.packet ? to.packet : next_packet_id();
    uint16_t ulen = uint16_t(sizeof(udp_hdr) + len);
    ipv4_fill(p, to.ip, ipproto_udp, ulen, s->ip_id.fetch_add(1, std::memory_order_relaxed));
    auto* u = reinterpret_cast<udp_hdr*>(p->frame + p->l4);
    u->sport = hton16(s->port);
    u->dport = hton16(to.port);
    u->len = hton16(ulen);
    u->csum = 0;
    memcpy(u + 1, buf, len);
    ipv4_hdr* h = ip(p);
    uint16_t c = csum_fold(csum_add(csum_pseudo(h->src, h->dst, ipproto_udp, ulen), u, ulen));
    u->csum = c ? c : 0xffff;  // 0 would mean "no checksum"
    eth_fill(p, mac, ethertype_ipv4);
    eth_pad(p);
    s->sent.fetch_add(1, std::memory_order_relaxed);
    netif::output(p);
    return int(len);
}

void udp_close(udp_socket* s)
{
    {
        lock_guard g(bind_lock);
        if (s->bound.load(std::memory_order_relaxed)) {
            if (port_group* grp = find_group(s->port, false)) {
                uint32_t n = grp->n.load(std::memory_order_relaxed);
                for (uint32_t i = 0; i < n; i++) {
                    if (grp->socks[i].load(std::memory_order_relaxed) == s) {
                        grp->socks[i].store(nullptr, std::memory_order_release);
                    }
                }
            }
            s->bound.store(false, std::memory_order_relaxed);
        }
    }
    s->ch.close();
}

udp_socket_stats udp_stats(const udp_socket* s)
{
    return {s->received.load(std::memory_order_relaxed), s->sent.load(std::memory_order_relaxed),
            s->bad.load(std::memory_order_relaxed), s->ch.drops()};
}

const channel* udp_channel(const udp_socket* s) { return &s->ch; }

}  // namespace net
