#include "net/icmp.hh"

#include "lib/string.hh"
#include "net/checksum.hh"
#include "net/ethernet.hh"
#include "net/ipv4.hh"
#include "net/netif.hh"

namespace net {

void icmp_input(pbuf* p)
{
    ipv4_hdr* h = ip(p);
    unsigned len = p->len - p->l4;
    if (len < sizeof(icmp_hdr) || !ipv4_checksum_ok(p) || checksum(p->frame + p->l4, len) != 0) {
        netif::count_drop(p, "icmp: short or bad checksum");
        return;
    }
    auto* m = reinterpret_cast<icmp_hdr*>(p->frame + p->l4);
    if (m->type != icmp_echo_request || m->code != 0) {
        netif::count_drop(p, "icmp: not an echo request");
        return;
    }
    // The reply: same identifier, sequence and data; addresses swapped.
    m->type = icmp_echo_reply;
    m->csum = 0;
    m->csum = checksum(m, len);
    uint8_t peer[mac_len];
    memcpy(peer, eth(p)->src, mac_len);
    uint32_t src = ntoh32(h->src);
    uint16_t id = ntoh16(h->id);
    if (ihl_bytes(h) != sizeof(ipv4_hdr)) {
        // Options are not echoed: move the ICMP message up behind a plain header.
        memmove(p->frame + ipv4_off + sizeof(ipv4_hdr), m, len);
    }
    ipv4_fill(p, src, ipproto_icmp, uint16_t(len), id);
    eth_fill(p, peer, ethertype_ipv4);
    eth_pad(p);
    netif::output(p);
}

}  // namespace net
