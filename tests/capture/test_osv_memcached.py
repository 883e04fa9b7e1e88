"""A real program on real OSv: Debian's memcached, the host's own unmodified binary and its
shared libraries in an OSv image (tests/support/osv_apps/memcached, made by
tests/support/osv_app_image.py from the shared OSv build's kernel), booted under QEMU TCG
with the host's UDP port forwarded to its 11211, driven from the host with sets, gets and
osvtrace's load generator, and recorded with `record --kernel osv --via shm` from boot to
memcached's own `shutdown`.

Slow (a boot of OSv under TCG, ~10 s of traffic, a copy of every ring while it runs) and
osv-marked: it needs ../shared/osv (tests/support/osv.py).
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

import osvtrace
from osvtrace.loadgen import load
from osvtrace.model import Model
from tests.support.osv import build
from tests.support.osv_app_image import app_image, cache_dir
from tests.support.osv_memcached import GUEST_PORT, OsvMemcached, check_sets_and_gets
from tests.support.vm import osvtrace as cli

pytestmark = [pytest.mark.qemu, pytest.mark.osv, pytest.mark.slow]


def _host_version() -> str:
    """memcached's version as the host's binary prints it (`memcached 1.6.18`)."""
    out = subprocess.run(["/usr/bin/memcached", "-V"], capture_output=True, text=True, timeout=30).stdout
    return out.split()[-1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tree = build()
    image = app_image("memcached", tree, cache_dir())
    out = tmp_path_factory.mktemp("osvmc") / "memcached.osvt"
    with OsvMemcached(image, out) as m:
        version = m.wait_ready()
        checked = check_sets_and_gets(m)
        # A window keeps the open loop from outrunning a guest its host cannot schedule for a
        # while (load.py): every request gets its answer, so the checks below can count them.
        res = load.run("memcache", m.target, rate=200, duration=4, keys=100, set_ratio=0.2, window=16, drain=3)
        doc = m.shutdown()
    return SimpleNamespace(out=out, version=version, checked=checked, load=res, doc=doc, port=m.port)


@pytest.mark.usefixtures("no_orphans")
def test_memcached_runs_unmodified_on_osv_and_answers_the_host(run):
    assert run.version == f"VERSION {_host_version()}"  # the host's own binary answered
    assert len(run.checked) == 40  # every set STORED, every get its value (checked in check_sets_and_gets)
    res = run.load
    assert res.bad == 0 and res.sent == 800, res.summary()
    assert res.answered >= 0.95 * res.sent, res.summary()  # user-mode net may drop a datagram under load
    assert res.extra["hits"] > 0 and res.extra["stored"] > 0 and res.extra["prefilled"] == 100
    doc = run.doc
    assert doc["kernel"] == "osv" and doc["via"] == "shm" and doc["stop"] == "app-exit" and doc["exit_code"] == 0
    assert f"--trace=net_packet*" in doc["cmdline"] and "/usr/bin/memcached" in doc["cmdline"]


def _udp_ports(frame: bytes) -> tuple[int, int] | None:
    """(source, destination) port of an Ethernet/IPv4/UDP frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    return struct.unpack_from(">HH", frame, 14 + ihl)


def test_the_recording_holds_memcacheds_threads_and_its_udp_traffic(run):
    with osvtrace.open(run.out) as t:
        assert t.kind == "osv-dump" and t.ncpus == 2 and len(t) == run.doc["events"]
        names = set(t.threads.values())
        # memcached names its threads (pthread_setname_np); OSv records the names
        assert "mc-worker" in names, sorted(names)
        m = Model(t)
        idx, a = m.events_args("net_packet") if hasattr(m, "events_args") else t.args("net_packet_in")
    rx = tx = 0
    with osvtrace.open(run.out) as t:
        for tp, is_rx in (("net_packet_in", True), ("net_packet_out", False)):
            idx, a = t.args(tp)
            for row, n in zip(a["a1"], a["a1_len"]):
                ports = _udp_ports(bytes(row[:n])) if a["a0"][0] == 9 else None
                if ports and ports[1 if is_rx else 0] == GUEST_PORT:
                    rx += is_rx
                    tx += not is_rx
    # every request the host sent went in, every answer came out (the rings were copied while
    # memcached ran: --via shm); loss in the copy would show in the record's lost_bytes
    assert run.doc["lost_bytes"] == 0, run.doc
    assert rx >= run.load.sent + len(run.checked) and tx >= run.load.answered + len(run.checked), (rx, tx)


@pytest.mark.parametrize("report,words", [
    ("sched", ("mc-worker", "cpu_time")),
    ("mutex", ("acquisitions", "contended")),
    ("wakeup", ("mc-worker",)),
])
def test_reports_on_the_memcached_trace_show_its_threads_and_locks(run, report, words):
    r = cli("report", report, str(run.out), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert all(w in r.stdout for w in words) and len(r.stdout.splitlines()) > 3, r.stdout[:3000]


def test_mutex_report_json_counts_contention_in_memcached(run):
    r = cli("report", "mutex", "--json", str(run.out), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    rows = doc["rows"] if isinstance(doc, dict) and "rows" in doc else doc
    assert rows and sum(int(x.get("acquisitions", 0)) for x in rows) > 1000, str(doc)[:2000]
