// Network byte order. Wire headers (ethernet.hh, arp.hh, ipv4.hh, udp.hh)
// keep their multi-byte fields big-endian exactly as on the wire; these
// helpers convert at the point of use, so a host-order value never sits in a
// header by accident.
#pragma once

#include <stdint.h>

namespace net {

constexpr uint16_t bswap16(uint16_t v) { return uint16_t((v >> 8) | (v << 8)); }
constexpr uint32_t bswap32(uint32_t v) { return __builtin_bswap32(v); }

// Host <-> network (x86 is little-endian; the kernel runs nowhere else).
constexpr uint16_t hton16(uint16_t v) { return bswap16(v); }
constexpr uint16_t ntoh16(uint16_t v) { return bswap16(v); }
constexpr uint32_t hton32(uint32_t v) { return bswap32(v); }
constexpr uint32_t ntoh32(uint32_t v) { return bswap32(v); }

// a.b.c.d as a host-order address.
constexpr uint32_t ipv4_addr(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    return (uint32_t(a) << 24) | (uint32_t(b) << 16) | (uint32_t(c) << 8) | d;
}

}  // namespace net
