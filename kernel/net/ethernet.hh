// Ethernet II framing: the 14-byte header every frame starts with.
#pragma once

#include <stdint.h>

#include "net/byteorder.hh"
#include "net/pbuf.hh"

namespace net {

constexpr unsigned mac_len = 6;

struct __attribute__((packed)) eth_hdr {
    uint8_t dst[mac_len];
    uint8_t src[mac_len];
    uint16_t type;  // big-endian ethertype
};
static_assert(sizeof(eth_hdr) == 14, "Ethernet II header is 14 bytes");
static_assert(__builtin_offsetof(eth_hdr, type) == 12, "ethertype at 12");

constexpr uint16_t ethertype_ipv4 = 0x0800;
constexpr uint16_t ethertype_arp = 0x0806;
constexpr unsigned eth_min_frame = 60;  // without FCS; shorter frames are padded

inline eth_hdr* eth(pbuf* p) { return reinterpret_cast<eth_hdr*>(p->frame); }

inline bool mac_equal(const uint8_t* a, const uint8_t* b) { return __builtin_memcmp(a, b, mac_len) == 0; }
inline bool mac_is_broadcast(const uint8_t* a)
{
    return (a[0] & a[1] & a[2] & a[3] & a[4] & a[5]) == 0xff;
}
inline bool mac_is_multicast(const uint8_t* a) { return a[0] & 1; }

// Fills p's Ethernet header: destination `dst`, source our MAC, `type`.
void eth_fill(pbuf* p, const uint8_t* dst, uint16_t type);

// Pads a frame shorter than the Ethernet minimum with zeros (the device
// sends what it is given; a peer may reject runts).
void eth_pad(pbuf* p);

}  // namespace net
