// UDP (RFC 768) and the socket-like API apps use: open, bind, recvfrom,
// sendto, close. Each socket owns a net channel (channel.hh): the receive
// thread classifies a datagram by its 5-tuple and pushes it there; the one
// thread that reads the socket pops it and does the protocol work on its own
// CPU: IPv4 and UDP checksums, copying the payload out; sendto builds the
// whole frame (headers, checksums) on the sender's CPU too.
//
// Several sockets may bind one port with udp_reuseport (like Linux's
// SO_REUSEPORT): a datagram goes to one of them by a hash of its source
// address and port, so each client sticks to one socket, and a server with
// one socket per thread spreads its clients over the CPUs.
//
// NOTE: one reader per socket (the channel is single-consumer); any thread
// may send. Socket objects are never freed (the receive thread may still
// hold a pointer to a socket it has just looked up when the socket closes).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "net/ethernet.hh"

namespace net {

class channel;

struct __attribute__((packed)) udp_hdr {
    uint16_t sport;
    uint16_t dport;
    uint16_t len;   // header + payload
    uint16_t csum;  // 0: none (IPv4 only)
};
static_assert(sizeof(udp_hdr) == 8, "UDP header is 8 bytes");

// Largest payload of one datagram without IP fragmentation (1500 - 20 - 8).
constexpr size_t udp_max_payload = 1472;

// Errors (negative returns).
enum udp_error : int {
    udp_closed = -1,      // the socket was closed (recvfrom's way of saying stop)
    udp_invalid = -2,     // bad argument, or the socket is not bound
    udp_in_use = -3,      // port bound by a socket without udp_reuseport, or group full
    udp_no_memory = -4,   // no packet buffer
    udp_no_route = -5,    // next hop's MAC unknown: an ARP request went out, try again
    udp_too_long = -6,    // payload over udp_max_payload
};

constexpr unsigned udp_reuseport = 1;

// Who sent a datagram (filled by recvfrom), or where to send one.
struct udp_peer {
    uint32_t ip = 0;    // host order
    uint16_t port = 0;  // host order
    // The received datagram's packet id: a datagram sent back to this peer
    // carries it as its own, so the trace joins request and reply into one
    // flow (rx -> ... -> tx). 0 when sending something that answers nothing.
    uint32_t packet = 0;
    bool has_mac = false;  // mac holds the sender's link address: no ARP needed to answer
    uint8_t mac[mac_len] = {};
};

struct udp_socket;

struct udp_socket_stats {
    uint64_t received;     // datagrams returned by recvfrom
    uint64_t sent;
    uint64_t bad;          // dropped by the consumer: checksum or length
    uint64_t channel_drops;  // dropped by the receive thread: channel full
};

// Thread context. nullptr when all sockets are taken (128 per boot: they are never freed).
udp_socket* udp_open();
// Binds to a local port (our one address). 0 or a udp_error.
int udp_bind(udp_socket* s, uint16_t port, unsigned flags = 0);
// The socket's reader: blocks for the next datagram, copies up to `len` bytes
// of its payload into buf (the rest is cut) and fills *from. Returns the
// bytes copied, or udp_closed once the socket is closed.
int udp_recvfrom(udp_socket* s, void* buf, size_t len, udp_peer* from);
// Any thread: sends one datagram. Returns len or a udp_error.
int udp_sendto(udp_socket* s, const void* buf, size_t len, const udp_peer& to);
// Any thread: unbinds the socket and makes its reader's recvfrom return udp_closed.
void udp_close(udp_socket* s);
udp_socket_stats udp_stats(const udp_socket* s);
// The socket's net channel (its address names the channel in the trace).
const channel* udp_channel(const udp_socket* s);

// Classification (receive thread): the channel of the socket bound to
// `dport` that datagrams from (src, sport) go to, or nullptr.
channel* udp_lookup(uint32_t src, uint16_t sport, uint16_t dport);

}  // namespace net
