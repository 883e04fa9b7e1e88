"""pcap from a real OSv trace: its net_packet_in/out records become the frames OSv's own
`trace.py pcap-dump` writes (kernels/osv.py's net_packet rule), and tshark reads them."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from osvtrace.cli.main import main
from tests.support.osv_traces import SYSTEM_PYTHON, fixture, osv_dir


def _frames(pcap: bytes) -> list[bytes]:
    """The captured bytes of each record of a classic pcap file (either timestamp resolution)."""
    out, pos = [], 24
    while pos + 16 <= len(pcap):
        incl = struct.unpack_from("<I", pcap, pos + 8)[0]
        out.append(pcap[pos + 16:pos + 16 + incl])
        pos += 16 + incl
    return out


@pytest.fixture(scope="module")
def osv_pcap(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("osvpcap")
    trace = fixture("mutexnet-bt.tracefile", d)
    assert main(["export", str(trace), "--format", "pcap", "-o", str(d / "ours.pcap")]) == 0
    return trace, d / "ours.pcap"


def test_osv_packets_export_as_the_frames_trace_py_writes(osv_pcap):
    trace, ours = osv_pcap
    osv = osv_dir()
    if osv is None:
        pytest.fail("no OSv scripts/trace.py: ../shared/osv's tarball or OSV_DIR is needed", pytrace=False)
    r = subprocess.run([SYSTEM_PYTHON, "scripts/trace.py", "pcap-dump", str(trace)], cwd=osv, capture_output=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-500:]
    theirs = _frames(r.stdout)
    mine = _frames(ours.read_bytes())
    assert len(mine) == len(theirs) > 100 and mine == theirs


def test_tshark_reads_the_osv_capture_as_the_apps_udp_on_loopback(osv_pcap):
    _, ours = osv_pcap
    tshark = shutil.which("tshark")
    assert tshark, "tshark is a Debian dependency of the tests (make deps)"
    out = subprocess.run([tshark, "-r", str(ours), "-T", "fields", "-e", "ip.src", "-e", "udp.length"],
                         capture_output=True, text=True, timeout=120).stdout.split("\n")
    rows = [ln.split("\t") for ln in out if ln.strip()]
    udp = [(src, int(n)) for src, n in rows if n]  # mutexnet's loopback phase, then a few out through virtio-net
    assert sum(src == "127.0.0.1" for src, _ in udp) > 100 and all(n > 8 for _, n in udp)
