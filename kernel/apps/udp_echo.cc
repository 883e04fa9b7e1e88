// udp-echo UDP_SERVER_USAGE (apps/udp_server.hh): sends every datagram back
// to where it came from, unchanged. The simplest
// server over net channels: the receive thread classifies and pushes, the
// worker (on its own CPU) checks the checksums, copies the payload out and
// builds the reply in the same buffer (apps/udp_server.hh has the rest).
#include "apps/udp_server.hh"
#include "core/app.hh"

namespace {

bool echo(void*, net::udp_socket* sock, const net::udp_peer& from, const char* req, size_t len)
{
    return net::udp_sendto(sock, req, len, from) >= 0;
}

int udp_echo_main(int argc, char** argv)
{
    udp_server::options o;
    o.name = "udp-echo";
    if (!udp_server::parse(argc, argv, &o)) {
        return 2;
    }
    return udp_server::run(o, nullptr, echo);
}

}  // namespace

REGISTER_APP(udp_echo_app, "udp-echo",
             UDP_SERVER_USAGE "  echo UDP datagrams",
             udp_echo_main);
