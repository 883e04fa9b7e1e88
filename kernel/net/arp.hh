// ARP (RFC 826) for IPv4 over Ethernet: answer who-has for our address, and
// a small table of neighbours' MAC addresses.
//
// NOTE: the table has one writer, the NIC's receive thread (ARP is on the
// default path), and lock-free readers on every CPU (sockets resolving a
// next hop). Each entry carries a generation in its key word, so a reader
// that raced a rewrite sees the key change and treats it as a miss; nobody
// ever waits.
#pragma once

#include <stdint.h>

#include "net/ethernet.hh"
#include "net/pbuf.hh"

namespace net {

struct __attribute__((packed)) arp_pkt {
    uint16_t htype;  // 1: Ethernet
    uint16_t ptype;  // 0x0800: IPv4
    uint8_t hlen;    // 6
    uint8_t plen;    // 4
    uint16_t op;     // 1 request, 2 reply
    uint8_t sha[mac_len];
    uint32_t spa;  // big-endian
    uint8_t tha[mac_len];
    uint32_t tpa;  // big-endian
};
static_assert(sizeof(arp_pkt) == 28, "ARP for IPv4 over Ethernet is 28 bytes");
static_assert(__builtin_offsetof(arp_pkt, spa) == 14 && __builtin_offsetof(arp_pkt, tpa) == 24, "ARP layout");

// The default path's handler for an ARP frame (receive thread). Learns the
// sender, answers a request for our address in place (the frame becomes the
// reply and keeps its packet id), and consumes p either way.
void arp_input(pbuf* p);

// The MAC of host-order address `ip` if known. Any thread.
bool arp_lookup(uint32_t ip, uint8_t* mac);

// Broadcasts a who-has for `ip`. Thread context.
void arp_request(uint32_t ip);

}  // namespace net
