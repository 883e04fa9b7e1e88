// The Internet checksum (RFC 1071): the ones'-complement sum of 16-bit words.
// IPv4 headers, ICMP and UDP use it. It is computed on the CPU that consumes
// (or sends) the packet, never in the receive thread (the net channel idea:
// protocol work happens where the data is used).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace net {

// Adds `len` bytes at `data` to a running 32-bit partial sum (a partial sum
// is any value; fold() finishes it). Byte order: the bytes as they are on the
// wire, summed as little-endian words; the result, folded and complemented,
// is stored back as-is (the sum is byte-order independent, RFC 1071 2.B).
uint64_t csum_add(uint64_t sum, const void* data, size_t len);

// Folds a partial sum to 16 bits and complements it: the value to store in a
// checksum field (or 0 when checking a block that includes its checksum).
uint16_t csum_fold(uint64_t sum);

inline uint16_t checksum(const void* data, size_t len) { return csum_fold(csum_add(0, data, len)); }

// The IPv4 pseudo-header of UDP/TCP (addresses as on the wire, protocol,
// transport length in host order).
uint64_t csum_pseudo(uint32_t src_be, uint32_t dst_be, uint8_t proto, uint16_t len);

}  // namespace net
