"""Net channels end to end under QEMU (TCG): udp-echo through QEMU's user-mode network,
driven by `osvtrace load` from the host, and the trace of it decoded into packet flows.

These boot the real kernel; a missing QEMU or tshark fails them (never skips)."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest

import osvtrace
from osvtrace.loadgen import load
from osvtrace.model import Model
from tests.support.net import NetGuest
from tests.support.vm import osvtrace as cli
from tests.support.vm import require_tools

pytestmark = pytest.mark.qemu


def test_ten_thousand_echoes_without_loss(kernel, no_orphans):
    n = 10_000
    with NetGuest(kernel, ["udp-echo", "7", "--count", str(n), "--idle-exit", "10000"], guest_port=7) as g:
        # At most 128 in flight: the 256-deep channel cannot overflow however slowly the loaded
        # host runs the guest (open loop at 2,000/s, a 0.2 s stall of its vCPU was enough to
        # drop); the drain ends as soon as all are answered
        res = load.run("udp", f"127.0.0.1:{g.port}", rate=2000, duration=n / 2000, conns=4, drain=30, window=128)
        out = g.wait(60)
    console = g.console.text()
    assert res.sent == n
    assert (res.answered, res.lost, res.bad) == (n, 0, 0), res.render() + "\n" + console
    assert out.kind == "app" and out.app_status == 0, console
    assert f"udp-echo: {n} requests served" in console
    assert "0 bad, 0 channel drops" in console
    _no_buffer_leak(console)


def _no_buffer_leak(console: str) -> None:
    """At the end only the posted receive buffers (256) and frames the device still holds
    (at most the transmit ring's 128) may be allocated, however many packets went through."""
    m = re.search(r"(\d+) packet buffers in use", console)
    assert m and int(m.group(1)) <= 256 + 128, console


def test_echo_over_virtio_pci_with_two_cpus_and_threads(kernel, no_orphans):
    """q35: legacy virtio-pci with MSI-X; two workers on two CPUs share the port (reuseport)."""
    argv = ["udp-echo", "7", "--threads", "2", "--count", "400", "--idle-exit", "10000"]
    with NetGuest(kernel, argv, guest_port=7, machine="q35", smp=2) as g:
        # 32 client ports: flows are spread over the workers by hash; with 8 ports all of them
        # land on one worker in 1 run of 128 (2 of 2^8), as seen in the kv test; with 32, 1 in 2^31
        res = load.run("udp", f"127.0.0.1:{g.port}", rate=400, duration=1, conns=32, drain=30, window=128)
        out = g.wait(60)
    console = g.console.text()
    assert (res.answered, res.bad) == (400, 0), res.render() + "\n" + console
    assert out.kind == "app" and out.app_status == 0, console
    # 32 client ports over two sockets: both workers got some (a hash, so not evenly).
    served = [int(m) for m in re.findall(r"worker \d on cpu \d: (\d+) requests", console)]
    assert len(served) == 2 and all(s > 0 for s in served) and sum(served) == 400, console
    assert "worker 0 on cpu 0" in console and "worker 1 on cpu 1" in console


def test_trace_decodes_into_packet_flows_and_a_pcap(kernel, tmp_path, no_orphans):
    require_tools("tshark")
    n = 500
    trace = tmp_path / "echo.osvt"
    argv = ["udp-echo", "7", "--count", str(n), "--idle-exit", "10000"]
    with NetGuest(kernel, argv, guest_port=7, trace="net_*", record_to=trace) as g:
        res = load.run("udp", f"127.0.0.1:{g.port}", rate=500, duration=n / 500, conns=2, drain=30, window=128)
        g.wait(60)
    assert (res.answered, res.bad) == (n, 0), res.render()
    assert g.recording is not None and sum(g.recording.lost.values()) == 0

    t = osvtrace.open(trace)
    flow = Model(t).packet_flow
    # The n echoed datagrams: every stage seen, in order, and the reply carries the request's id.
    ch = flow["channel"] != 0
    assert ch.sum() == n
    times = np.stack([flow[f"{s}_time"][ch] for s in ("rx", "classify", "push", "pop", "tx")])
    assert (times >= 0).all()
    assert (np.diff(times, axis=0) >= 0).all()
    assert not flow["dropped"].any()
    assert len(np.unique(flow["channel"][ch])) == 1  # one socket
    # The default path: the gateway's ARP reply (rx -> classify, no channel).
    assert ((flow["channel"] == 0) & (flow["rx_time"] >= 0) & (flow["push_time"] < 0)).sum() >= 1

    r = cli("report", "net", str(trace), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    sock = [row for row in rows if row["channel"] != 0]
    assert len(sock) == 1 and sock[0]["packets"] == n and sock[0]["dropped"] == 0
    assert all(sock[0][f"{a}>{b} p50"] > 0 for a, b in [("rx", "classify"), ("push", "pop"), ("pop", "tx")])

    pcap = tmp_path / "echo.pcap"
    r = cli("export", str(trace), "--format", "pcap", "-o", str(pcap))
    assert r.returncode == 0, r.stderr
    fields = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport",
                             "-e", "arp.opcode"], capture_output=True, text=True, timeout=60)
    assert fields.returncode == 0, fields.stderr
    lines = [ln.split("\t") for ln in fields.stdout.splitlines()]
    to_guest = sum(1 for f in lines if f[1] == "7")
    from_guest = sum(1 for f in lines if f[0] == "7")
    arp = sum(1 for f in lines if f[2])
    assert (to_guest, from_guest) == (n, n)
    assert arp >= 2  # our who-has for the gateway and its answer
    assert len(lines) == 2 * n + arp


def test_a_slow_consumer_drops_at_its_full_channel_and_every_drop_is_in_the_trace(kernel, tmp_path, no_orphans):
    """udp-echo doing 300 us of work per request serves ~3,000 a second; 20,000 a second for
    a second overflow its 256-deep channel. Each datagram dropped there is one
    net_channel_drop record: the app's count, the trace's, the packet flows' and `report net`'s
    are the same number. How many drop was timing (the host's send rate against the guest's
    work, its busy loop calibrated in 2 ms that a loaded host can stretch); --serve-after-drops
    1001 makes the worker start receiving only once its channel dropped 1,001."""
    trace = tmp_path / "drops.osvt"
    argv = ["udp-echo", "7", "--work-us", "300", "--idle-exit", "2000", "--serve-after-drops", "1001"]
    with NetGuest(kernel, argv, guest_port=7, trace="net_*", record_to=trace) as g:
        res = load.run("udp", f"127.0.0.1:{g.port}", rate=20_000, duration=1, conns=2, drain=3)
        g.wait(60)
    console = g.console.text()
    m = re.search(r"worker 0 on cpu 0: (\d+) requests, \d+ datagrams in, \d+ out, 0 bad, (\d+) channel drops", console)
    assert m, console
    served, drops = int(m[1]), int(m[2])
    assert drops > 1000 and served > 256, console
    assert res.answered == served and served + drops <= res.sent, res.render() + "\n" + console
    assert g.recording is not None and sum(g.recording.lost.values()) == 0

    t = osvtrace.open(trace)
    idx, a = t.args("net_channel_drop")
    assert len(idx) == drops
    assert (a["depth"] >= 255).all()  # dropped because full, as the record says
    flow = Model(t).packet_flow
    assert int(flow["dropped"].sum()) == drops
    r = cli("report", "net", str(trace), "--json")
    assert r.returncode == 0, r.stderr
    sock = [row for row in json.loads(r.stdout)["rows"] if row["channel"] != 0]
    assert len(sock) == 1 and sock[0]["dropped"] == drops, sock


def test_run_cli_with_net_user_and_hostfwd(kernel, no_orphans):
    """`osvtrace run --net user --hostfwd` as a user types it, and `osvtrace load` on it."""
    import sys
    import time

    from tests.support.net import free_udp_port
    from tests.support.vm import OSVTRACE, ROOT

    port = free_udp_port()
    vm = subprocess.Popen(OSVTRACE + ["run", "--no-build", "--net", "user", "--hostfwd", f"udp:{port}-:9000",
                                      "--timeout", "60", "udp-echo", "9000", "--count", "50", "--idle-exit", "10000"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while "listening" not in seen and time.monotonic() < deadline:
            seen += vm.stdout.readline()
        assert "listening" in seen, seen
        # 50 datagrams fit the guest's channel; the drain (up to 30 s, over once all are
        # answered) lets a guest the loaded host runs late answer them all (default: 1 s)
        r = cli("load", "udp", f"127.0.0.1:{port}", "--rate", "100", "--duration", "0.5", "--drain", "30", "--json")
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        assert (s["sent"], s["answered"], s["bad"]) == (50, 50, 0)
        out, err = vm.communicate(timeout=60)
        assert vm.returncode == 0, err
        assert "50 requests served" in out
    finally:
        if vm.poll() is None:
            vm.kill()
            vm.wait()
    assert sys.executable


def test_bad_hostfwd_is_one_clear_line(kernel):  # the option is checked once the kernel is found
    r = cli("run", "--no-build", "--net", "user", "--hostfwd", "udp:99999-:7", "hello")
    assert r.returncode == 2
    assert "--hostfwd" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_soak_kv_and_echo_on_four_cpus(kernel, no_orphans):
    """A longer run with 4 vCPUs under multi-threaded TCG: correct replies, little loss, no leak."""
    for app, kind, port in (("kv", "memcache", 11211), ("udp-echo", "udp", 7)):
        argv = [app, str(port), "--threads", "4", "--idle-exit", "5000"]
        with NetGuest(kernel, argv, guest_port=port, smp=4, timeout=300) as g:
            res = load.run(kind, f"127.0.0.1:{g.port}", rate=3000, duration=20, conns=16, drain=3)
            out = g.wait(120)
        console = g.console.text()
        assert out.kind == "app" and out.app_status == 0, console
        assert res.bad == 0 and res.lost <= res.sent * 0.01, res.render() + "\n" + console
        _no_buffer_leak(console)
