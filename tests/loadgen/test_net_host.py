"""Host-side net pieces without QEMU: the launcher's NIC options, memcached's UDP framing,
the load generator against a tiny echo server, and the net report on a hand-built trace."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

import osvtrace
from osvtrace.format.encode import CpuStreamBuilder
from osvtrace.loadgen import load
from osvtrace.loadgen import memcache_udp as mc
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.reports.common import Options
from osvtrace.reports.net import net as net_report
from osvtrace.vm.qemu import QemuError, VmConfig, hostfwd_rule, net_args, qemu_command
from tests.support.traces import write_trace


@pytest.mark.parametrize("spec, rule", [
    ("udp:5555-:7", "udp:127.0.0.1:5555-:7"),
    ("udp:0.0.0.0:5555-:7", "udp:0.0.0.0:5555-:7"),
    ("udp::5555-10.0.2.15:7", "udp:127.0.0.1:5555-10.0.2.15:7"),
    ("tcp:8080-:80", "tcp:127.0.0.1:8080-:80"),
])
def test_hostfwd_listens_on_loopback_unless_told(spec, rule):
    assert hostfwd_rule(spec) == rule


@pytest.mark.parametrize("spec", ["5555-:7", "udp:5555:7", "udp:70000-:7", "udp:5555-:0", "icmp:1-:1", ""])
def test_bad_hostfwd_says_what_is_expected(spec):
    with pytest.raises(QemuError, match="hostfwd"):
        hostfwd_rule(spec)


def test_nic_per_machine_and_backend():
    cfg = VmConfig(app="hello", net="user", hostfwd=("udp:5555-:7", "udp:5556-:8"))
    assert net_args(cfg) == ["-netdev", "user,id=net0,hostfwd=udp:127.0.0.1:5555-:7,hostfwd=udp:127.0.0.1:5556-:8",
                             "-device", "virtio-net-device,netdev=net0"]
    cfg = VmConfig(app="hello", net="user", machine="q35")
    assert net_args(cfg)[-1] == "virtio-net-pci,netdev=net0,disable-modern=on"
    cfg = VmConfig(app="hello", net="tap", tap_ifname="tap7")
    assert net_args(cfg)[1] == "tap,id=net0,ifname=tap7,script=no,downscript=no"
    assert net_args(VmConfig(app="hello")) == []
    assert "-netdev" in qemu_command(VmConfig(app="hello", net="user", accel="tcg"))
    with pytest.raises(QemuError, match="--hostfwd needs --net user"):
        net_args(VmConfig(app="hello", hostfwd=("udp:1-:2",)))
    with pytest.raises(QemuError, match="for --net user"):
        net_args(VmConfig(app="hello", net="tap", hostfwd=("udp:1-:2",)))


def test_memcache_reassembly_in_any_order_and_over_messages():
    r = mc.Reassembly()
    r.add(1, 2, b"def")
    assert not r.complete
    r.add(0, 2, b"abc")
    assert r.complete and r.text() == b"abcdef"
    r.add(0, 0, b"")  # memcached's empty datagram for a multi-get miss: no text
    r.add(0, 1, b"END\r\n")  # a second message
    assert r.text() == b"abcdefEND\r\n"
    assert mc.reply_finished(b"VALUE a 0 1\r\nx\r\nEND\r\n", b"get a\r\n")
    assert not mc.reply_finished(b"VALUE a 0 1\r\nx\r\n", b"get a\r\n")
    assert mc.reply_finished(b"STORED\r\n", b"set a 0 0 1\r\n")
    assert mc.reply_finished(b"CLIENT_ERROR bad data chunk\r\n", b"set a 0 0 1\r\n")
    assert mc.frame(0x10203, b"x") == b"\x02\x03\x00\x00\x00\x01\x00\x00x"


def _echo_server(drop_every: int = 0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    stop = threading.Event()

    def serve():
        n = 0
        while not stop.is_set():
            try:
                d, a = s.recvfrom(65536)
            except socket.timeout:
                continue
            n += 1
            if not drop_every or n % drop_every:
                s.sendto(d, a)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return s, stop, t


@pytest.mark.parametrize("drop_every, lost", [(0, 0), (10, 30)])
def test_load_generator_counts_answers_losses_and_latency(drop_every, lost):
    s, stop, t = _echo_server(drop_every)
    try:
        res = load.run("udp", f"127.0.0.1:{s.getsockname()[1]}", rate=1000, duration=0.3, conns=3, size=100,
                       drain=0.5)
    finally:
        stop.set()
        t.join()
        s.close()
    assert (res.sent, res.lost, res.bad) == (300, lost, 0)
    assert len(res.latency_ns) == 300 - lost and (res.latency_ns > 0).all()
    p = res.percentiles()
    assert 0 < p["p50"] <= p["p99"] <= p["max"]
    assert "lost" in res.render()


def test_load_window_caps_the_requests_in_flight():
    """A server that answers only every 50 ms, in batches: with window=8 it never holds more
    than 8 unanswered requests, and all 100 are answered (the schedule slips instead)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.05)
    stop = threading.Event()
    most = [0]

    def serve() -> None:
        held = []
        while not stop.is_set():
            try:
                held.append(s.recvfrom(65536))
                most[0] = max(most[0], len(held))
                continue
            except TimeoutError:
                pass
            for d, a in held:
                s.sendto(d, a)
            held.clear()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        res = load.run("udp", f"127.0.0.1:{s.getsockname()[1]}", rate=10_000, duration=0.01, conns=3, drain=10,
                       window=8)
    finally:
        stop.set()
        t.join()
        s.close()
    assert (res.sent, res.answered, res.lost, res.bad) == (100, 100, 0, 0)
    assert most[0] <= 8  # never more in flight (fewer when the host is slow to send)


def test_load_rejects_what_it_cannot_do():
    from osvtrace.errors import UsageError

    with pytest.raises(UsageError, match="HOST:PORT"):
        load.run("udp", "localhost", rate=1, duration=1)
    with pytest.raises(UsageError):
        load.run("udp", "127.0.0.1:9", rate=1e9, duration=100)
    with pytest.raises(UsageError, match="kind"):
        load.run("tcp", "127.0.0.1:9", rate=1, duration=1)


def test_net_report_on_a_hand_built_trace(tmp_path, catalog):
    """Golden: two requests on one socket (one answered across CPUs, one dropped by its consumer),
    an ARP request answered on the default path, a datagram dropped by a full channel."""
    C = 0xC000
    c0 = CpuStreamBuilder(catalog)
    c0.add("net_rx", [100, 200, 300, 400], 5, packet=[1, 2, 3, 4], len=[60, 60, 42, 60], queue=0)
    c0.add("net_classify", [110, 210, 310, 410], 5, packet=[1, 2, 3, 4], channel=[C, C, 0, C],
           result=[0, 0, 1, 0])
    c0.add("net_channel_push", [120, 220], 5, packet=[1, 2], channel=C, depth=[1, 2])
    c0.add("net_tx", [350], 5, packet=3, len=42)  # the ARP reply, on the receive thread
    c0.add("net_channel_drop", [420], 5, packet=4, channel=C, depth=256)
    c1 = CpuStreamBuilder(catalog)
    c1.add("net_channel_pop", [150, 260], 6, packet=[1, 2], channel=C, depth=[1, 0])
    c1.add("net_tx", [180], 6, packet=1, len=60)  # packet 2: bad checksum, never answered
    m = Model(osvtrace.open(write_trace(tmp_path / "n.osvt", {0: c0.slots(), 1: c1.slots()})))
    rep = net_report(m, Filter(), Options())
    rows = {r["channel"]: r for r in rep.records()}
    sock, dflt = rows[C], rows[0]
    assert (sock["path"], sock["packets"], sock["received"], sock["answered"], sock["dropped"]) == \
        ("socket", 3, 3, 1, 1)
    assert sock["cross_cpu"] == 2  # packets 1 and 2 were popped on CPU 1
    assert (sock["rx>classify p50"], sock["push>pop p50"], sock["pop>tx p50"], sock["rx>tx p50"]) == (10, 30, 30, 80)
    assert (dflt["path"], dflt["packets"], dflt["answered"], dflt["rx>tx p50"], dflt["push>pop p50"]) == \
        ("default", 1, 1, 50, -1)
    assert np.isin("cross_cpu", list(rep.columns))
