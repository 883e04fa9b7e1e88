// IPv4 (RFC 791): header layout, validation on the consuming CPU, header
// construction for sending, and the next hop.
//
// What is left out, on purpose: options are accepted and skipped, never
// sent; fragments are dropped (the apps speak single datagrams, and memcached
// over UDP is specified without IP fragmentation in mind); no forwarding.
#pragma once

#include <stdint.h>

#include "net/byteorder.hh"
#include "net/ethernet.hh"
#include "net/pbuf.hh"

namespace net {

struct __attribute__((packed)) ipv4_hdr {
    uint8_t ver_ihl;  // version 4 in the high nibble, header length in 32-bit words in the low
    uint8_t tos;
    uint16_t total_len;
    uint16_t id;
    uint16_t frag;  // flags (DF 0x4000, MF 0x2000) and fragment offset
    uint8_t ttl;
    uint8_t proto;
    uint16_t csum;
    uint32_t src;
    uint32_t dst;
};
static_assert(sizeof(ipv4_hdr) == 20, "IPv4 header without options is 20 bytes");
static_assert(__builtin_offsetof(ipv4_hdr, src) == 12 && __builtin_offsetof(ipv4_hdr, dst) == 16, "IPv4 layout");

constexpr uint8_t ipproto_icmp = 1;
constexpr uint8_t ipproto_udp = 17;
constexpr uint16_t ip_df = 0x4000, ip_mf = 0x2000, ip_offmask = 0x1fff;
constexpr unsigned ipv4_off = sizeof(eth_hdr);  // where the IPv4 header starts in a frame
constexpr uint16_t ipv4_mtu = 1500;

inline ipv4_hdr* ip(pbuf* p) { return reinterpret_cast<ipv4_hdr*>(p->frame + ipv4_off); }
inline unsigned ihl_bytes(const ipv4_hdr* h) { return (h->ver_ihl & 0xf) * 4u; }

// The cheap checks the receive thread makes before it trusts the header to
// find the transport ports: version, header length, total length within the
// frame, not a fragment. Sets p->l4. No checksum (that is the consumer's).
bool ipv4_parse(pbuf* p);

// The consumer's check: the header checksum. (ipv4_parse has been done.)
bool ipv4_checksum_ok(pbuf* p);

// Fills p's IPv4 header (no options, DF, TTL 64) for `payload` transport
// bytes from our address to `dst` (host order), with its checksum, and sets
// p->l4 and p->len (Ethernet + IPv4 + payload).
void ipv4_fill(pbuf* p, uint32_t dst, uint8_t proto, uint16_t payload, uint16_t id);

// Where a datagram to `dst` goes first: dst itself when on our subnet, else the gateway.
uint32_t ipv4_next_hop(uint32_t dst);

}  // namespace net
