// Early classification: from the headers alone, in the receive thread,
// decide where a frame goes: a socket's net channel (by its UDP 5-tuple),
// the default path, or nowhere. No checksum is computed here; that work
// belongs to the consumer (channel.hh).
#pragma once

#include <stdint.h>

#include "net/pbuf.hh"

namespace net {

class channel;

// Values of net_classify's `result` (tracepoints/net.toml, enum classify_result).
enum class classify_result : uint8_t {
    channel = 0,
    default_path = 1,
    drop = 2,
};

// Sets *ch for classify_result::channel. Leaves p unchanged but for
// p->l4 and trimming Ethernet padding off p->len (ipv4_parse).
classify_result classify(pbuf* p, channel** ch);

}  // namespace net
