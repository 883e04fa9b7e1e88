#include "net/ipv4.hh"

#include "net/checksum.hh"
#include "net/netif.hh"

namespace net {

bool ipv4_parse(pbuf* p)
{
    if (p->len < ipv4_off + sizeof(ipv4_hdr)) {
        return false;
    }
    ipv4_hdr* h = ip(p);
    unsigned ihl = ihl_bytes(h);
    unsigned total = ntoh16(h->total_len);
    if ((h->ver_ihl >> 4) != 4 || ihl < sizeof(ipv4_hdr) || total < ihl || ipv4_off + total > p->len) {
        return false;
    }
    if (ntoh16(h->frag) & (ip_mf | ip_offmask)) {
        return false;  // a fragment: not reassembled (ipv4.hh)
    }
    p->l4 = uint16_t(ipv4_off + ihl);
    // Ethernet padding of short frames is not part of the datagram.
    p->len = uint16_t(ipv4_off + total);
    return true;
}

bool ipv4_checksum_ok(pbuf* p) { return checksum(ip(p), ihl_bytes(ip(p))) == 0; }

void ipv4_fill(pbuf* p, uint32_t dst, uint8_t proto, uint16_t payload, uint16_t id)
{
    ipv4_hdr* h = ip(p);
    h->ver_ihl = 0x45;
    h->tos = 0;
    h->total_len = hton16(uint16_t(sizeof(ipv4_hdr) + payload));
    h->id = hton16(id);
    h->frag = hton16(ip_df);
    h->ttl = 64;
    h->proto = proto;
    h->csum = 0;
    h->src = hton32(netif::config().ip);
    h->dst = hton32(dst);
    h->csum = checksum(h, sizeof *h);
    p->l4 = uint16_t(ipv4_off + sizeof(ipv4_hdr));
    p->len = uint16_t(p->l4 + payload);
}

uint32_t ipv4_next_hop(uint32_t dst)
{
    const netif::iface& c = netif::config();
    return ((dst ^ c.ip) & c.mask) == 0 ? dst : c.gateway;
}

}  // namespace net
