"""pcap export, read back by tshark (installed on demand; the test fails, never skips, without it)."""

from __future__ import annotations

import struct
import subprocess

import pytest

import osvtrace
from osvtrace.cli.main import main
from osvtrace.exports import Options, export
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from tests.support.exports import FRAMES, need_tool, net_trace, udp_frame


def _tshark(path, *fields: str) -> list[list[str]]:
    tshark = need_tool("tshark", "tshark")
    r = subprocess.run([tshark, "-r", str(path), "-T", "fields", *sum((["-e", f] for f in fields), [])],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines()]


@pytest.fixture
def net(tmp_path):
    return Model(osvtrace.open(net_trace(tmp_path / "net.osvt")))


def test_tshark_reads_frames_ports_and_lengths(net, tmp_path):
    out = tmp_path / "net.pcap"
    res = export(net, "pcap", out, Options())
    assert res.counts["packets"] == len(FRAMES)
    rows = _tshark(out, "frame.len", "frame.cap_len", "udp.srcport", "udp.dstport", "ip.src", "frame.time_epoch")
    expect = []
    for _pkt, t, _cpu, _dir, sport, dport, payload in sorted(FRAMES, key=lambda f: f[1]):
        n = len(udp_frame(sport, dport, payload))
        expect.append([str(n), str(min(n, 128)), str(sport), str(dport), "10.0.0.1", f"0.{t:09d}"])
    assert rows == expect


def test_file_header_is_nanosecond_ethernet_snaplen_128(net, tmp_path):
    out = tmp_path / "net.pcap"
    export(net, "pcap", out, Options())
    magic, major, minor, _zone, _sig, snap, link = struct.unpack("<IHHiIII", out.read_bytes()[:24])
    assert (magic, major, minor, snap, link) == (0xA1B23C4D, 2, 4, 128, 1)


def test_filters_select_packets(net, tmp_path):
    out = tmp_path / "cpu1.pcap"
    export(net, "pcap", out, Options(Filter(cpus=[1])))
    assert _tshark(out, "udp.srcport") == [["9000"]]
    export(net, "pcap", out, Options(Filter(since=120, until=1000)))
    assert [r[0] for r in _tshark(out, "udp.srcport")] == ["9000", "1234"]


def test_trace_without_net_packet_records_says_what_to_enable(story_file, tmp_path, capsys):
    assert main(["export", str(story_file), "--format", "pcap", "-o", str(tmp_path / "x.pcap")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no net_packet records" in err and "--trace 'net_packet'" in err
    assert not (tmp_path / "x.pcap").exists()
