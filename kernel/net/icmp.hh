// ICMP (RFC 792), the part a host must have: echo replies (ping). Runs on
// the default path, in the NIC's receive thread: echo requests have no
// socket, so there is no consumer CPU to move the work to.
#pragma once

#include <stdint.h>

#include "net/pbuf.hh"

namespace net {

struct __attribute__((packed)) icmp_hdr {
    uint8_t type;
    uint8_t code;
    uint16_t csum;
    uint16_t id;
    uint16_t seq;
};
static_assert(sizeof(icmp_hdr) == 8, "ICMP echo header is 8 bytes");

constexpr uint8_t icmp_echo_reply = 0, icmp_echo_request = 8;

// An ICMP datagram for us (ipv4_parse done): an echo request becomes its
// reply in place and keeps its packet id; anything else is counted and
// dropped. Consumes p.
void icmp_input(pbuf* p);

}  // namespace net
