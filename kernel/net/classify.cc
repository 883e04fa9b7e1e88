#include "net/classify.hh"

#include "net/ipv4.hh"
#include "net/netif.hh"
#include "net/udp.hh"

namespace net {

classify_result classify(pbuf* p, channel** ch)
{
    *ch = nullptr;
    if (p->len < sizeof(eth_hdr)) {
        return classify_result::drop;
    }
    const netif::iface& c = netif::config();
    eth_hdr* e = eth(p);
    if (!mac_equal(e->dst, c.mac) && !mac_is_broadcast(e->dst)) {
        return classify_result::drop;  // not ours (a tap may deliver other hosts' frames)
    }
    uint16_t type = ntoh16(e->type);
    if (type == ethertype_arp) {
        return classify_result::default_path;
    }
    if (type != ethertype_ipv4 || !ipv4_parse(p)) {
        return classify_result::drop;
    }
    ipv4_hdr* h = ip(p);
    if (ntoh32(h->dst) != c.ip) {
        return classify_result::drop;
    }
    if (h->proto == ipproto_udp && p->len >= p->l4 + sizeof(udp_hdr)) {
        auto* u = reinterpret_cast<const udp_hdr*>(p->frame + p->l4);
        // The 5-tuple: protocol (UDP), source address and port, our address and port.
        if ((*ch = udp_lookup(ntoh32(h->src), ntoh16(u->sport), ntoh16(u->dport)))) {
            return classify_result::channel;
        }
    }
    // ICMP, and UDP to a port nobody has bound: the default path decides.
    return classify_result::default_path;
}

}  // namespace net
