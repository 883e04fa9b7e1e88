// Packet buffers: one per Ethernet frame, from the NIC's receive ring to the
// consuming socket (and, for a reply, back out through the transmit ring).
//
// A buffer is one heap block of exactly 2 KiB, physically contiguous (the
// identity map makes virtual == physical), so the device reads and writes it
// by DMA directly. The virtio-net header sits right in front of the frame;
// the frame starts 2 bytes past a 16-byte boundary so that the IPv4 header
// (14 bytes further) is 16-byte aligned.
//
// NOTE: a buffer has one owner at a time and moves between owners through a
// queue with release/acquire ordering (the virtqueue, a net channel, the
// transmit queue): its fields are never shared.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace net {

constexpr size_t eth_frame_max = 1514;  // 14-byte header + 1500-byte MTU, no FCS
constexpr size_t dev_hdr_max = 10;      // legacy virtio_net_hdr without MRG_RXBUF

struct pbuf {
    pbuf* next;       // link on the driver's transmit queue
    uint32_t packet;  // trace id: unique per received frame; a reply carries its request's
    uint16_t len;     // frame bytes in frame[]
    uint16_t l4;      // offset of the transport header in frame[] (set by classification)
    uint64_t rx_tsc;  // when the driver took it from the device (0: built for sending)
    uint8_t meta_pad[32];
    uint8_t dev_hdr[dev_hdr_max];  // the device's per-frame header, right in front of the frame
    uint8_t frame[2048 - 66];
};
static_assert(sizeof(pbuf) == 2048, "a packet buffer is one 2 KiB heap block");
static_assert(__builtin_offsetof(pbuf, dev_hdr) + dev_hdr_max == __builtin_offsetof(pbuf, frame),
              "the device header sits right in front of the frame");
static_assert(__builtin_offsetof(pbuf, frame) % 16 == 2, "IPv4 header 16-byte aligned after 14 bytes of Ethernet");
static_assert(sizeof(pbuf::frame) >= eth_frame_max, "room for a full frame");

// A fresh buffer (fields zeroed, frame not), or nullptr when memory runs out.
// Thread context (the heap may block on its depot's mutex).
pbuf* pbuf_alloc();
void pbuf_free(pbuf* p);

// Buffers allocated and not yet freed (leak checks and the end-of-run summary).
uint64_t pbufs_in_use();

// A new trace id for a frame: per boot, never 0 (0 means "no id").
uint32_t next_packet_id();

}  // namespace net
