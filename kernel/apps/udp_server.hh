// The skeleton shared by the UDP server apps (udp-echo, kv): one socket per
// thread, all bound to one port with udp_reuseport, threads pinned round
// robin over the CPUs, so each client (source address and port) is served
// by one thread on one CPU, and the channel the receive thread pushes into
// wakes that thread on its own CPU.
//
// The app's main thread brings the network up, starts the workers, prints
// "NAME: listening on udp port P with T threads" (hosts wait for that line
// before sending), then watches the request counter: it stops the workers
// (closing their sockets) after --count requests or --idle-exit ms without
// one, and prints per-thread and interface counters.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "net/udp.hh"

namespace udp_server {

struct options {
    const char* name;          // the app's, for messages
    uint16_t port = 0;
    unsigned threads = 1;
    unsigned first_cpu = 0;    // worker i runs on CPU (first_cpu + i) mod CPUs
    uint64_t count = 0;        // stop after this many requests (0: never)
    uint64_t idle_exit_ms = 0; // stop after this long without a request (0: never)
    uint64_t work_us = 0;      // busy work per request: a slow consumer, whose channel fills and drops
    uint64_t serve_after_drops = 0;  // each worker starts receiving only once its channel dropped this many
                                     // (at most 30 s): drops forced, not left to the host's timing
};

// The command line every UDP server app takes (for its usage line).
#define UDP_SERVER_USAGE \
    "PORT [--threads T] [--first-cpu C] [--count N] [--idle-exit MS] [--work-us US] [--serve-after-drops N]"

// One request datagram: `len` bytes at `req` from `from`. The handler replies
// with net::udp_sendto(sock, ..., from) as often as it needs (from.packet
// ties the reply to the request in the trace). Runs in the worker thread.
// Returns false to not count the datagram as a request (malformed).
using handler_fn = bool (*)(void* state, net::udp_socket* sock, const net::udp_peer& from, const char* req,
                            size_t len);
// Per-worker state (a buffer, say): made in the worker's thread before it
// binds; nullptr means no memory.
using state_fn = void* (*)(unsigned worker);

// Parses UDP_SERVER_USAGE into o (defaults: o as given). Prints the problem
// and returns false.
bool parse(int argc, char** argv, options* o);

// Runs the server until count or idle exit; returns the app's exit status.
int run(const options& o, state_fn make_state, handler_fn handle);

}  // namespace udp_server
