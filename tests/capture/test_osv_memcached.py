"""A real program on real OSv: Debian's memcached, the host's own unmodified binary and its
shared libraries in an OSv image (tests/support/osv_apps/memcached, made by
tests/support/osv_app_image.py from the shared OSv build's kernel), booted under QEMU TCG
with the host's UDP port forwarded to its 11211, driven from the host with sets, gets and
osvtrace's load generator, and recorded with `record --kernel osv --via shm` from boot to
memcached's own `shutdown graceful`.

Slow (about 60 s: a boot of OSv under TCG, ~10 s of traffic, a copy of every ring while it
runs) and osv-marked: it needs ../shared/osv (tests/support/osv.py) and Debian's memcached.
"""

from __future__ import annotations

import json
import struct
import subprocess
from types import SimpleNamespace

import pytest

import osvtrace
from osvtrace.loadgen import load
from tests.support.osv import build
from tests.support.osv_app_image import APPS, AppImageError, app_image, cache_dir
from tests.support.osv_memcached import GUEST_PORT, OsvMemcached, check_sets_and_gets
from tests.support.vm import osvtrace as cli
from tests.support.vm import our_qemus

pytestmark = [pytest.mark.qemu, pytest.mark.osv, pytest.mark.slow]


def _host_version() -> str:
    """memcached's version as the host's binary prints it (`memcached 1.6.18`)."""
    out = subprocess.run(["/usr/bin/memcached", "-V"], capture_output=True, text=True, timeout=30).stdout
    return out.split()[-1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tree = build()
    try:
        image = app_image("memcached", tree, cache_dir())
    except AppImageError as e:  # e.g. no /usr/bin/memcached: the make step says to apt-get it
        pytest.fail(str(e), pytrace=False)
    out = tmp_path_factory.mktemp("osvmc") / "memcached.osvt"
    with OsvMemcached(image, out) as m:
        version = m.wait_ready()
        checked = check_sets_and_gets(m)
        # A window keeps the open loop from outrunning a guest its host cannot schedule for a
        # while (load.py): every request gets its answer, so the checks below can count them.
        res = load.run("memcache", m.target, rate=200, duration=4, keys=100, set_ratio=0.2, window=16, drain=3)
        doc = m.shutdown()
    return SimpleNamespace(out=out, version=version, checked=checked, load=res, doc=doc, port=m.port)


def test_memcached_runs_unmodified_on_osv_and_answers_the_host(run):
    # the VM is the module fixture's, so no_orphans (per test, set up after it) could not see it
    assert not our_qemus(), "QEMU left running after memcached's shutdown and the recording's end"
    assert run.version == f"VERSION {_host_version()}"  # the host's own binary answered
    assert len(run.checked) == 40  # every set STORED, every get its value (checked in check_sets_and_gets)
    res = run.load
    assert res.bad == 0 and res.sent == 800, res.summary()
    assert res.answered >= 0.95 * res.sent, res.summary()  # user-mode net may drop a datagram under load
    assert res.extra["hits"] > 0 and res.extra["stored"] > 0 and res.extra["prefilled"] == 100
    doc = run.doc
    assert doc["kernel"] == "osv" and doc["via"] == "shm" and doc["stop"] == "app-exit"  # record exited 0 (shutdown())
    assert "--trace=net_packet*" in doc["cmdline"] and "/usr/bin/memcached" in doc["cmdline"]


def _memcached_packets(t) -> tuple[int, int]:
    """(requests in, replies out) on memcached's UDP port, from OSv's own packet records:
    the Ethernet frames (netisr protocol 9) the driver took in and sent out. OSv records
    an inbound packet again at IP input (protocol 1); only the frames are counted."""
    counts = []
    for tp, port_at in (("net_packet_in", 1), ("net_packet_out", 0)):  # rx: destination port; tx: source
        _idx, a = t.args(tp)
        n = 0
        for proto, row, size in zip(a["a0"], a["a1"], a["a1_len"]):
            frame = bytes(row[:size])
            if proto != 9 or len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
                continue  # not an IPv4/UDP frame
            ihl = (frame[14] & 0x0F) * 4
            n += struct.unpack_from(">HH", frame, 14 + ihl)[port_at] == GUEST_PORT
        counts.append(n)
    return counts[0], counts[1]


def test_the_recording_holds_memcacheds_threads_and_its_udp_traffic(run):
    assert run.doc["lost_bytes"] == {"0": 0, "1": 0}, run.doc  # the poller kept up: every record is there
    with osvtrace.open(run.out) as t:
        assert t.kind == "osv-dump" and t.ncpus == 2 and len(t) == run.doc["events"]
        names = list(t.threads.values())
        rx, tx = _memcached_packets(t)
    # memcached names its threads (pthread_setname_np); OSv records the names: the two
    # workers of -t 2 and its maintenance threads
    assert names.count("mc-worker") == 2 and {"mc-lrumaint", "mc-log"} <= set(names), sorted(names)
    # every request answered went in and its reply came out, as OSv's driver saw them (the
    # version polls before memcached listened, and any request lost on the way back, are on top)
    res, n = run.load, len(run.checked) + 2  # + the delete and the get after it
    assert rx >= res.answered + res.extra["prefilled"] + n and tx >= res.answered + res.extra["prefilled"] + n, (rx, tx)


@pytest.mark.parametrize("report,words", [
    ("sched", ("mc-worker", "cpu_time")),
    ("mutex", ("acquisitions", "contended")),
    ("wakeup", ("mc-worker",)),
])
def test_reports_on_the_memcached_trace_show_its_threads_and_locks(run, report, words):
    r = cli("report", report, str(run.out), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert all(w in r.stdout for w in words) and len(r.stdout.splitlines()) > 3, r.stdout[:3000]


def test_the_hottest_lock_is_the_udp_socket_the_workers_and_the_driver_share(run):
    """Both workers wait in epoll on memcached's one UDP socket and OSv's virtio-net-rx thread
    delivers into it: the most waited-for mutex has all three as waiters (docs/osv.md shows
    the stacks: the socket's lock, in_pcblookup_hash, sopoll, soreceive, sosend)."""
    r = cli("report", "prof-lock", "--json", str(run.out), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["rows"]
    top = max({row["mutex"] for row in rows}, key=lambda m: sum(x["total"] for x in rows if x["mutex"] == m))
    waiters = [x["thread"] for x in rows if x["mutex"] == top]
    assert waiters.count("mc-worker") == 2 and "virtio-net-rx" in waiters, rows[:10]


def test_sql_pairs_each_request_frame_with_its_reply_for_the_time_inside_osv(run):
    """docs/osv.md's query: OSv's packet records, paired by client port and memcached's request
    id, give memcached's time inside the guest per request; every answered request has one."""
    sql = (APPS / "memcached" / "in_guest_latency.sql").read_text()
    r = cli("query", str(run.out), sql, "--json", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    [row] = json.loads(r.stdout)
    res = run.load
    assert row["replies"] >= res.answered + res.extra["prefilled"] + len(run.checked), row
    assert 0 < row["p50_us"] <= row["p90_us"] <= row["p99_us"] <= row["max_us"], row
    # inside the guest is part of what the host measured, send to reply
    assert row["p50_us"] < res.percentiles()["max"], (row, res.percentiles())
