"""The guest's stack frame by frame: QEMU's `dgram` netdev carries raw Ethernet frames
between the guest's virtio-net and a UDP socket of this test, which plays the other host on
the wire. Checks ARP, ICMP echo, UDP echo byte for byte (addresses, checksums), and that
what must be dropped is dropped and counted: bad checksums, fragments, unbound ports,
frames for another MAC. Boots the real kernel (a missing QEMU fails, never skips)."""

from __future__ import annotations

import re
import socket
import struct

import pytest

from osvtrace.vm import qemu
from tests.support.net import LISTENING, ConsoleWatch, free_udp_port

pytestmark = pytest.mark.qemu

GUEST_IP = bytes([10, 0, 2, 15])
HOST_IP = bytes([10, 0, 2, 2])
HOST_MAC = bytes.fromhex("020000000001")
BROADCAST = b"\xff" * 6


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst: bytes, src: bytes, etype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", etype) + payload


def ipv4(proto: int, payload: bytes, *, src: bytes = HOST_IP, dst: bytes = GUEST_IP, frag: int = 0x4000,
         bad_csum: bool = False, ident: int = 1) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0, src, dst)
    c = csum(h) ^ (0x5555 if bad_csum else 0)
    return h[:10] + struct.pack("!H", c) + h[12:] + payload


def udp(sport: int, dport: int, data: bytes, *, src: bytes = HOST_IP, dst: bytes = GUEST_IP,
        checksum: str = "good") -> bytes:
    u = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    if checksum == "none":
        return u
    pseudo = src + dst + struct.pack("!BBH", 0, 17, len(u))
    c = csum(pseudo + u) or 0xFFFF
    if checksum == "bad":
        c ^= 0x00FF
    return u[:6] + struct.pack("!H", c) + u[8:]


def arp(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, spa, tha, tpa)


class Wire:
    """The other end of the guest's cable."""

    def __init__(self, kernel_path, app: list[str]):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        mine = self.sock.getsockname()[1]
        self.qemu_port = free_udp_port()
        cfg = qemu.VmConfig(app=app[0], args=tuple(app[1:]), kernel=kernel_path, accel="tcg", timeout=60,
                            extra_args=["-netdev", f"dgram,id=net0,local.type=inet,local.host=127.0.0.1,"
                                        f"local.port={self.qemu_port},remote.type=inet,remote.host=127.0.0.1,"
                                        f"remote.port={mine}",
                                        "-device", "virtio-net-device,netdev=net0,mac=52:54:00:aa:bb:cc"])
        self.console = ConsoleWatch()
        self.vm = qemu.Vm(cfg, console=self.console).start()
        self.guest_mac = bytes.fromhex("525400aabbcc")

    def send(self, frame: bytes) -> None:
        self.sock.sendto(frame, ("127.0.0.1", self.qemu_port))

    def recv(self, timeout: float = 5) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            return None

    def recv_ip(self, timeout: float = 5) -> bytes | None:
        """The next IPv4 frame from the guest (ARP frames in between are skipped)."""
        while True:
            f = self.recv(timeout)
            if f is None or f[12:14] == b"\x08\x00":
                return f

    def close(self) -> None:
        self.vm.stop()
        self.sock.close()


@pytest.fixture
def wire(kernel, no_orphans):
    w = Wire(kernel, ["udp-echo", "7", "--idle-exit", "1500"])
    yield w
    w.close()


def test_arp_icmp_udp_and_drops_frame_by_frame(wire):
    # The guest asks for its gateway first (net::netif::up).
    f = wire.recv(15)
    assert f is not None, wire.console.text()
    assert f[:6] == BROADCAST and f[6:12] == wire.guest_mac and f[12:14] == b"\x08\x06"
    op, sha, spa, tpa = struct.unpack("!6xH6s4s6x4s", f[14:42])
    assert (op, sha, spa, tpa) == (1, wire.guest_mac, GUEST_IP, HOST_IP)
    assert len(f) >= 60  # padded to the Ethernet minimum
    wire.send(eth(wire.guest_mac, HOST_MAC, 0x0806, arp(2, HOST_MAC, HOST_IP, wire.guest_mac, GUEST_IP)))
    assert wire.console.wait_for(LISTENING, 15), wire.console.text()

    # ARP: who has 10.0.2.15? -> the guest's MAC, straight back to the asker.
    wire.send(eth(BROADCAST, HOST_MAC, 0x0806, arp(1, HOST_MAC, HOST_IP, b"\0" * 6, GUEST_IP)))
    f = wire.recv()
    assert f is not None and f[:6] == HOST_MAC and f[12:14] == b"\x08\x06"
    op, sha, spa, tha, tpa = struct.unpack("!6xH6s4s6s4s", f[14:42])
    assert (op, sha, spa, tha, tpa) == (2, wire.guest_mac, GUEST_IP, HOST_MAC, HOST_IP)

    # ICMP echo: the reply has the same id, sequence and data, valid checksums.
    data = bytes(range(56))
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 7) + data
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    wire.send(eth(wire.guest_mac, HOST_MAC, 0x0800, ipv4(1, icmp)))
    f = wire.recv_ip()
    assert f is not None and f[:6] == HOST_MAC
    ip = f[14:34]
    assert csum(ip) == 0 and ip[9] == 1 and ip[12:16] == GUEST_IP and ip[16:20] == HOST_IP
    reply = f[34:34 + len(icmp)]
    assert csum(reply) == 0
    assert struct.unpack("!BBxxHH", reply[:8]) == (0, 0, 0x1234, 7) and reply[8:] == data

    # UDP echo: addresses and ports swapped, TTL 64, DF, both checksums valid.
    payload = b"net channels!" * 5
    wire.send(eth(wire.guest_mac, HOST_MAC, 0x0800, ipv4(17, udp(40000, 7, payload))))
    f = wire.recv_ip()
    assert f is not None and f[:6] == HOST_MAC and f[6:12] == wire.guest_mac
    ip = f[14:34]
    assert csum(ip) == 0 and ip[8] == 64 and struct.unpack("!H", ip[6:8])[0] & 0x4000
    assert ip[12:16] == GUEST_IP and ip[16:20] == HOST_IP
    total = struct.unpack("!H", ip[2:4])[0]
    u = f[34:14 + total]
    assert struct.unpack("!HHH", u[:6]) == (7, 40000, 8 + len(payload)) and u[8:] == payload
    assert csum(GUEST_IP + HOST_IP + struct.pack("!BBH", 0, 17, len(u)) + u) == 0

    # A datagram without a checksum (0 = none, legal over IPv4) is echoed too.
    wire.send(eth(wire.guest_mac, HOST_MAC, 0x0800, ipv4(17, udp(40001, 7, b"no sum", checksum="none"))))
    f = wire.recv_ip()
    assert f is not None and f[42:48] == b"no sum"

    # What must be dropped: no reply to any of these ...
    bad = [
        eth(wire.guest_mac, HOST_MAC, 0x0800, ipv4(17, udp(40002, 7, b"bad udp sum", checksum="bad"))),
        eth(wire.guest_mac, HOST_MAC, 0x0800, ipv4(17, udp(40003, 7, b"bad ip sum"), bad_csum=True)),
        eth(wire.guest_mac, HOST_MAC, 0x0800, ipv4(17, udp(40004, 7, b"fragment"), frag=0x2000)),
        eth(wire.guest_mac, HOST_MAC, 0x0800, ipv4(17, udp(40005, 9, b"nobody on port 9"))),
        eth(bytes.fromhex("020000000099"), HOST_MAC, 0x0800, ipv4(17, udp(40006, 7, b"not my MAC"))),
        eth(wire.guest_mac, HOST_MAC, 0x0800, ipv4(17, udp(40007, 7, b"not my IP"), dst=bytes([10, 0, 2, 99]))),
        eth(wire.guest_mac, HOST_MAC, 0x86DD, b"\x60" + b"\0" * 39),  # IPv6
    ]
    for frame in bad:
        wire.send(frame)
    # ... and a good one after them proves the guest is still answering.
    wire.send(eth(wire.guest_mac, HOST_MAC, 0x0800, ipv4(17, udp(40008, 7, b"still here"))))
    f = wire.recv_ip()
    assert f is not None and f[42:52] == b"still here", f

    out = wire.vm.wait(30)
    console = wire.console.text()
    assert out.kind == "app" and out.app_status == 0, console
    # The consumer's checks: bad UDP and IP checksums (2); the rest never reached a channel.
    m = re.search(r"worker 0 on cpu 0: (\d+) requests, (\d+) datagrams in, (\d+) out, (\d+) bad", console)
    assert m and tuple(map(int, m.groups())) == (3, 3, 3, 2), console
    m = re.search(r"net: (\d+) frames in \((\d+) to channels, (\d+) default path\), (\d+) dropped", console)
    # in: ARP reply, ARP request, ICMP, 3 good UDP + 7 bad frames = 13; to channels: 3 good + 2 bad sums;
    # default path: 2 ARP, ICMP, the unbound port; dropped: fragment, unbound port, MAC, IP, IPv6.
    assert m and tuple(map(int, m.groups())) == (13, 5, 4, 5), console
