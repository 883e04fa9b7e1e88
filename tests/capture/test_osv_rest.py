"""`osvtrace record --kernel osv --via rest`: OSv's own HTTP server (the image built with
REST=1, tests/support/osv.py build_rest) answers GET /trace/buffers at the app's end; the
OSVT dump it sends is the output, read by osvtrace and by OSv's trace.py with the same counts.
"""

from __future__ import annotations

import json

import pytest

import osvtrace
from tests.support.osv import build, build_rest, tracepoint_counts
from tests.support.osv_traces import parse_summary, tracepy_summary
from tests.support.vm import osvtrace as cli

APP = ("/mutexnet", "2000", "2")


@pytest.mark.qemu
@pytest.mark.osv
@pytest.mark.usefixtures("no_orphans")
def test_record_osv_via_rest_writes_osvs_own_dump_that_trace_py_reads_with_the_same_counts(tmp_path):
    tree = build_rest()
    out = tmp_path / "rest.osvt"
    r = cli("record", "--kernel", "osv", "--via", "rest", "--image", str(tree / "build/release/usr.img"),
            "--smp", "2", "--json", "-o", str(out), *APP, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["via"] == "rest" and doc["kernel"] == "osv" and doc["stop"] == "app-exit" and doc["cpus"] == 2
    # the server starts after the app, in place of /init's detached one (which OSv would end with the app)
    assert doc["cmdline"].endswith("--noinit --rootfs=rofs /mutexnet 2000 2 ; /libhttpserver-api.so")
    assert doc["dump_bytes"] == out.stat().st_size == doc["bytes"] and doc["fetch_seconds"] > 0
    assert out.read_bytes()[:4] == b"TVSO"  # OSv's dump as it came
    assert "mutexnet: done" in r.stderr  # the app ran to its end before the server answered
    with osvtrace.open(out) as t:
        assert t.kind == "osv-dump" and t.ncpus == 2 and len(t) == doc["events"] > 1000
        ours = tracepoint_counts(t)
    assert parse_summary(tracepy_summary(tree, out)) == ours
    names = dict(ours)
    assert names.get("mutex_lock", 0) > 100 and names.get("sched_switch", 0) > 100


@pytest.mark.osv
def test_record_osv_via_rest_refuses_an_image_without_osvs_rest_server_in_one_line(tmp_path):
    tree = build()  # build.sh's plain image: /mutexnet only
    r = cli("record", "--kernel", "osv", "--via", "rest", "--image", str(tree / "build/release/usr.img"),
            "-o", str(tmp_path / "x.osvt"), *APP)
    assert r.returncode == 2, r.stderr
    assert "has no REST server" in r.stderr and "REST=1" in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and not (tmp_path / "x.osvt").exists()


def test_via_rest_is_for_osv_only(tmp_path):
    r = cli("record", "--via", "rest", "-o", str(tmp_path / "x.osvt"), "hello")
    assert r.returncode == 2 and "--via rest is for --kernel osv" in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0
