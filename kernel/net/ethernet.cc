#include "net/ethernet.hh"

#include "lib/string.hh"
#include "net/netif.hh"

namespace net {

void eth_fill(pbuf* p, const uint8_t* dst, uint16_t type)
{
    eth_hdr* h = eth(p);
    memcpy(h->dst, dst, mac_len);
    memcpy(h->src, netif::config().mac, mac_len);
    h->type = hton16(type);
}

void eth_pad(pbuf* p)
{
    if (p->len < eth_min_frame) {
        memset(p->frame + p->len, 0, eth_min_frame - p->len);
        p->len = eth_min_frame;
    }
}

}  // namespace net
