#include "net/checksum.hh"

#include "net/byteorder.hh"

namespace net {

uint64_t csum_add(uint64_t sum, const void* data, size_t len)
{
    // 32-bit words into a 64-bit accumulator: carries pile up in the high
    // half and are folded once at the end (2^32 words before it could
    // overflow: far beyond any frame).
    auto* p = static_cast<const uint8_t*>(data);
    while (len >= 4) {
        uint32_t w;
        __builtin_memcpy(&w, p, 4);  // unaligned-safe; one load (-ffreestanding needs the builtin spelled out)
        sum += w;
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t w;
        __builtin_memcpy(&w, p, 2);
        sum += w;
        p += 2;
        len -= 2;
    }
    if (len) {
        sum += *p;  // a last odd byte is the high byte of a zero-padded big-endian word: the low byte here
    }
    return sum;
}

uint16_t csum_fold(uint64_t sum)
{
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
}

uint64_t csum_pseudo(uint32_t src_be, uint32_t dst_be, uint8_t proto, uint16_t len)
{
    uint64_t sum = uint64_t(src_be) + dst_be;
    sum += hton16(proto);
    sum += hton16(len);
    return sum;
}

}  // namespace net
