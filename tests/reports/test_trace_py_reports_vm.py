"""prof-idle, timed and memory on real traces of our kernel (QEMU, TCG, gdb snapshot at the
app's end): the alloc app on 2 vCPUs, every tracepoint on, ending with NAPS forced idle periods on each CPU. The app prints the blocks it leaked
on purpose; the report must name exactly those as its threads' leaks. Idle periods are checked
against the raw sched_idle / sched_idle_ret records, counted with numpy."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import osvtrace as ot
from tests.support.vm import osvtrace

pytestmark = [pytest.mark.qemu]
NAPS = 3  # the app idles every CPU this many times at its end (a thread pinned there sleeps 1 ms)


@pytest.fixture(scope="module")
def alloc_trace(kernel, tmp_path_factory):
    out = tmp_path_factory.mktemp("alloc") / "alloc.osvt"
    r = osvtrace("record", "--via", "gdb", "-o", str(out), "--smp", "2", "--accel", "tcg", "--trace", "*",
                 "--tracebuf", "16M", "--mem", "512", "--no-build", "--kernel", str(kernel), "alloc", "--threads", "3",
                 "--rounds", "500", "--leak", "4", "--naps", str(NAPS), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("alloc: "))
    leaked = {int(a, 16) for a in re.search(r"addresses=(\S+)", line).group(1).split(",")}
    return out, leaked


def report_json(path, *args) -> dict:
    r = osvtrace("report", *args[:1], str(path), *args[1:], "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.usefixtures("no_orphans")
def test_memory_finds_exactly_the_blocks_the_app_leaked(alloc_trace):
    path, leaked = alloc_trace
    assert len(leaked) == 12
    rows = report_json(path, "memory", "--by", "leaks", "--thread", "allocer")["rows"]
    assert {r["buf"] for r in rows} == leaked
    assert {r["len"] for r in rows} == {777}
    by_thread = [r for r in report_json(path, "memory", "--by", "thread")["rows"] if r["thread"] == "allocer"]
    assert len(by_thread) == 3
    assert all(r["allocs"] == 504 and r["frees"] == 500 and r["live"] == 4 for r in by_thread)
    cls = report_json(path, "memory", "--thread", "allocer")["rows"]
    assert sum(r["allocs"] for r in cls) == 3 * 504


@pytest.mark.usefixtures("no_orphans")
def test_prof_idle_matches_the_idle_records_of_each_cpu(alloc_trace):
    path, _ = alloc_trace
    t = ot.open(path)
    ev = t.events
    idle, ret = t.tracepoint("sched_idle").id, t.tracepoint("sched_idle_ret").id
    rows = {r["cpu"]: r for r in report_json(path, "prof-idle")["rows"]}
    assert set(rows) == {0, 1}
    for c in (0, 1):
        on = np.nonzero((ev.cpu == c) & np.isin(ev.tp, [idle, ret]))[0]
        tp, time = ev.tp[on], ev.time[on]
        # the idle loop alternates the two records on its CPU; a pair is an idle then its ret
        closes = np.nonzero((tp[1:] == ret) & (tp[:-1] == idle))[0]
        assert len(closes) >= NAPS
        assert rows[c]["source"] == "sched_idle"
        assert rows[c]["periods"] == len(closes)
        assert rows[c]["idle"] == int((time[closes + 1] - time[closes]).sum())
        assert rows[c]["max"] == int((time[closes + 1] - time[closes]).max())
    timed = {r["tracepoint"]: r for r in report_json(path, "timed")["rows"]}
    assert timed["sched_idle"]["count"] == sum(r["periods"] for r in rows.values())
    assert timed["sched_idle"]["no_entry"] == 0 and timed["sched_idle"]["no_exit"] == 0
