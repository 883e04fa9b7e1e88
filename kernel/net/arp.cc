#include "net/arp.hh"

#include <atomic>

#include "lib/string.hh"
#include "net/netif.hh"

namespace net {
namespace {

constexpr uint16_t op_request = 1, op_reply = 2;
constexpr unsigned table_size = 64;  // direct-mapped: a collision replaces the older neighbour

struct entry {
    // (generation << 32) | host-order IPv4 address; 0: empty. The writer
    // zeroes it, stores the MAC, then stores the new key (release).
    std::atomic<uint64_t> key{0};
    std::atomic<uint64_t> mac{0};  // 6 bytes, little-endian in the low 48 bits
};

entry table[table_size];
uint32_t generation;  // the writer's own (receive thread only)

unsigned slot(uint32_t ip) { return (ip * 2654435761u) >> 26; }  // Fibonacci hash, 6 bits

uint64_t pack_mac(const uint8_t* m)
{
    uint64_t v = 0;
    memcpy(&v, m, mac_len);
    return v;
}

// Receive thread only (the single writer).
void learn(uint32_t ip, const uint8_t* mac)
{
    if (!ip || mac_is_multicast(mac)) {
        return;
    }
    entry& e = table[slot(ip)];
    uint64_t m = pack_mac(mac);
    uint64_t k = e.key.load(std::memory_order_relaxed);
    if (uint32_t(k) == ip && e.mac.load(std::memory_order_relaxed) == m) {
        return;  // nothing new: readers keep their hits
    }
    e.key.store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    e.mac.store(m, std::memory_order_relaxed);
    e.key.store((uint64_t(++generation) << 32) | ip, std::memory_order_release);
}

}  // namespace

bool arp_lookup(uint32_t ip, uint8_t* mac)
{
    entry& e = table[slot(ip)];
    uint64_t k1 = e.key.load(std::memory_order_acquire);
    if (uint32_t(k1) != ip || !k1) {
        return false;
    }
    uint64_t m = e.mac.load(std::memory_order_acquire);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (e.key.load(std::memory_order_relaxed) != k1) {
        return false;  // rewritten while we read: a miss, never a torn answer
    }
    memcpy(mac, &m, mac_len);
    return true;
}

void arp_input(pbuf* p)
{
    const netif::iface& c = netif::config();
    if (p->len < sizeof(eth_hdr) + sizeof(arp_pkt)) {
        netif::count_drop(p, "arp: short frame");
        return;
    }
    auto* a = reinterpret_cast<arp_pkt*>(p->frame + sizeof(eth_hdr));
    if (ntoh16(a->htype) != 1 || ntoh16(a->ptype) != ethertype_ipv4 || a->hlen != mac_len || a->plen != 4) {
        netif::count_drop(p, "arp: not IPv4 over Ethernet");
        return;
    }
    uint32_t spa = ntoh32(a->spa), tpa = ntoh32(a->tpa);
    uint16_t op = ntoh16(a->op);
    // RFC 826: update a known sender; add it when the message is for us.
    if (tpa == c.ip) {
        learn(spa, a->sha);
    }
    if (op != op_request || tpa != c.ip) {
        pbuf_free(p);
        return;
    }
    // Turn the request into the reply in place: same buffer, same packet id,
    // so the trace shows the reply as the end of the request's flow.
    memcpy(a->tha, a->sha, mac_len);
    a->tpa = a->spa;
    memcpy(a->sha, c.mac, mac_len);
    a->spa = hton32(c.ip);
    a->op = hton16(op_reply);
    eth_fill(p, a->tha, ethertype_arp);
    p->len = sizeof(eth_hdr) + sizeof(arp_pkt);
    eth_pad(p);
    netif::output(p);
}

void arp_request(uint32_t ip)
{
    const netif::iface& c = netif::config();
    pbuf* p = pbuf_alloc();
    if (!p) {
        return;
    }
    static const uint8_t broadcast[mac_len] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    eth_fill(p, broadcast, ethertype_arp);
    auto* a = reinterpret_cast<arp_pkt*>(p->frame + sizeof(eth_hdr));
    a->htype = hton16(1);
    a->ptype = hton16(ethertype_ipv4);
    a->hlen = mac_len;
    a->plen = 4;
    a->op = hton16(op_request);
    memcpy(a->sha, c.mac, mac_len);
    a->spa = hton32(c.ip);
    memset(a->tha, 0, mac_len);
    a->tpa = hton32(ip);
    p->len = sizeof(eth_hdr) + sizeof(arp_pkt);
    eth_pad(p);
    p->packet = next_packet_id();
    netif::output(p);
}

}  // namespace net
