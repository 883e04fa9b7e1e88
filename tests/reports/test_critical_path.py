"""report critical-path: each answered request's time from rx to tx, cut by stage and by what
its consumer thread did, adds up exactly to the request's latency; on a real kv run under
load the categories are there and a forced lock wait shows by the lock's name."""

from __future__ import annotations

import json

import numpy as np
import pytest

import osvtrace
from osvtrace.loadgen import load
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.reports.common import Options
from osvtrace.reports.critical import critical_path, segments
from tests.support.net import NetGuest
from tests.support.vm import osvtrace as cli

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]

KV_PORT = 11211


@pytest.fixture(scope="module")
def kv_trace(kernel, tmp_path_factory):
    """kv with two threads on two vCPUs under a memcache load, net, sched and mutex traced."""
    path = tmp_path_factory.mktemp("crit") / "kv.osvt"
    argv = ["kv", str(KV_PORT), "--threads", "2", "--idle-exit", "5000"]
    with NetGuest(kernel, argv, guest_port=KV_PORT, smp=2, trace="net_*,sched_*,mutex_*", record_to=path) as g:
        res = load.run("memcache", f"127.0.0.1:{g.port}", rate=300, duration=2, conns=16, keys=20,
                       value_size=64, set_ratio=0.5, drain=30, window=64)
        g.wait(90)
    assert res.answered > 500, res.render()
    return path


def test_segments_add_up_to_each_requests_latency(kv_trace):
    m = Model(osvtrace.open(kv_trace))
    f = m.packet_flow
    pk = np.flatnonzero((f["rx_time"] >= 0) & (f["tx_time"] >= 0) & ~f["dropped"])
    assert len(pk) > 500
    seg = segments(m, pk)
    per = np.bincount(np.searchsorted(pk, seg["row"]), weights=seg["dur"], minlength=len(pk)).astype(np.int64)
    np.testing.assert_array_equal(per, f["tx_time"][pk] - f["rx_time"][pk])
    assert (seg["dur"] > 0).all()
    # segments of one packet follow each other without overlap
    same = seg["row"][1:] == seg["row"][:-1]
    assert (seg["start"][1:][same] >= seg["start"][:-1][same] + seg["dur"][:-1][same]).all()


def test_the_categories_of_a_kv_run_and_their_shares(kv_trace):
    m = Model(osvtrace.open(kv_trace))
    r = critical_path(m, Filter(), Options())
    cats = dict(zip(r.columns["segment"].tolist(), r.columns["share_pct"].tolist()))
    assert "receive" in cats and "serve" in cats, cats
    assert abs(sum(cats.values()) - 100) < 1e-6
    # kv's workers block on their channel between requests: a request finds its worker asleep
    # or busy, never neither
    assert "wake-up" in cats or "queued" in cats, cats


def test_cli_slowest_and_one_packet(kv_trace):
    r = cli("report", "critical-path", str(kv_trace), "--slowest", "5", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "5 request(s)" in doc["notes"][0]
    m = Model(osvtrace.open(kv_trace))
    f = m.packet_flow
    ok = np.flatnonzero((f["rx_time"] >= 0) & (f["tx_time"] >= 0) & ~f["dropped"])
    worst = ok[np.argmax(f["tx_time"][ok] - f["rx_time"][ok])]
    r = cli("report", "critical-path", str(kv_trace), "--packet", str(int(f["packet"][worst])), "--by-packet",
            "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert sum(x["dur"] for x in rows) == int(f["tx_time"][worst] - f["rx_time"][worst])
    assert rows[0]["segment"] == "receive"
    r = cli("report", "critical-path", str(kv_trace), "--packet", "4000000000")
    assert r.returncode == 2 and "no packet 4000000000" in r.stderr and "Traceback" not in r.stderr
