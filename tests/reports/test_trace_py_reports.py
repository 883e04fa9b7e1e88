"""The reports that stand in for OSv's trace.py commands (timed, list-timed, prof-timed,
prof-idle, memory) on hand-built traces with known answers, through the library and the CLI."""

from __future__ import annotations

import json

import osvtrace
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.reports import REGISTRY, Options
from osvtrace.reports.registry import produce
from tests.support.traces import catalog_with, events_trace
from tests.support.vm import osvtrace as run_cli

CALLS = [("vfs_read", 900, []), ("vfs_read_ret", 901, []), ("vfs_read_err", 902, [])]


def trace_file(tmp_path, per_cpu_events, threads=None):
    return events_trace(tmp_path / "r.osvt", catalog_with(*CALLS), per_cpu_events, threads=threads)


def cli(*args) -> str:
    r = run_cli(*map(str, args))
    assert r.returncode == 0, r.stderr
    return r.stdout


def report(path, name, flt=None, **more):
    return REGISTRY[name].fn(Model(osvtrace.open(path)), flt or Filter(), Options(limit=50, more=more))


CALLS_TRACE = {0: [("vfs_read_ret", 5, 5), ("vfs_read", 10, 5), ("vfs_read", 20, 5), ("vfs_read_ret", 50, 5),
                   ("vfs_read_err", 110, 5), ("vfs_read", 200, 6), ("vfs_read_ret", 210, 6), ("vfs_read", 300, 6)]}


def test_timed_summarises_each_tracepoint_and_counts_what_did_not_pair(tmp_path):
    r = {x["tracepoint"]: x for x in report(trace_file(tmp_path, CALLS_TRACE), "timed").records()}
    v = r["vfs_read"]
    assert (v["count"], v["min"], v["max"], v["total"], v["errors"]) == (3, 10, 100, 140, 1)
    assert (v["no_entry"], v["open_at_end"], v["no_exit"]) == (1, 1, 0)


def test_list_timed_orders_by_duration_or_time_and_shows_depth(tmp_path):
    path = trace_file(tmp_path, CALLS_TRACE, threads={5: "reader", 6: "other"})
    by_dur = report(path, "list-timed").records()
    assert [(x["start"], x["dur"], x["depth"], x["thread"], x["ok"]) for x in by_dur] == [
        (10, 100, 0, "reader", False), (20, 30, 1, "reader", True), (200, 10, 0, "other", True)]
    assert [x["start"] for x in report(path, "list-timed", sort="time").records()] == [10, 20, 200]


def test_prof_timed_splits_by_thread(tmp_path):
    r = {x["tid"]: x for x in report(trace_file(tmp_path, CALLS_TRACE), "prof-timed").records()}
    assert (r[5]["count"], r[5]["total"], r[5]["nested"]) == (2, 130, 1)
    assert (r[6]["count"], r[6]["total"]) == (1, 10)


def test_timed_and_list_timed_through_the_cli_as_json(tmp_path):
    path = trace_file(tmp_path, CALLS_TRACE)
    rows = json.loads(cli("report", "timed", path, "--json"))["rows"]
    assert [(x["tracepoint"], x["count"]) for x in rows] == [("vfs_read", 3)]
    listed = json.loads(cli("report", "list-timed", path, "--sort", "time", "--json"))["rows"]
    assert [x["start"] for x in listed] == [10, 20, 200]


def test_prof_idle_from_idle_pairs_and_from_idle_thread_slices(tmp_path):
    # CPU 0 shows idleness by sched_idle pairs; CPU 1 only by switches to its idle thread (tid 2)
    path = trace_file(tmp_path, {
        0: [("sched_idle", 100, 1), ("sched_idle_ret", 150, 1), ("sched_wait", 190, 8, {"obj": 0xB0}),
            ("sched_switch", 200, 8, {"next": 1, "prev_state": 2}), ("sched_idle", 300, 1),
            ("sched_idle_ret", 310_300, 1), ("trace_marker", 400_000, 7, {"value": 1, "label": "end"})],
        1: [("sched_switch", 100, 9, {"next": 2, "prev_state": 2}), ("sched_switch", 20_100, 2, {"next": 9,
                                                                                             "prev_state": 1})]},
        threads={1: "idle0", 2: "idle1", 8: "sleeper", 9: "worker"})
    r = report(path, "prof-idle")
    by = {x["cpu"]: x for x in r.records()}
    assert (by[0]["source"], by[0]["periods"], by[0]["idle"], by[0]["max"]) == ("sched_idle", 2, 310_050, 310_000)
    assert (by[1]["source"], by[1]["periods"], by[1]["idle"]) == ("idle thread", 1, 20_000)
    assert r.extra["histogram"]["0"] == [1, 0, 0, 1, 0, 0, 0, 0]  # 50 ns, 310 us
    assert any(line.startswith("cpu0") for line in r.picture)
    # thread 8 blocked on 0xB0 from 200 on: CPU 0 was idle 310 us of that time
    assert (by[0]["top_wait"], by[0]["waiting"]) == (0xB0, 310_000)
    assert r.extra["waiting_during_idle"]["0"] == [{"object": 0xB0, "ns": 310_000, "threads": 1}]


def test_memory_by_class_thread_and_leaks(tmp_path):
    def m(t, tid, buf, n):
        return ("memory_malloc", t, tid, {"buf": buf, "len": n, "align": 16})

    def f(t, tid, buf):
        return ("memory_free", t, tid, {"buf": buf})

    path = trace_file(tmp_path, {0: [f(5, 5, 0x9000), m(10, 5, 0x1000, 100), m(20, 5, 0x2000, 100),
                                     m(30, 6, 0x3000, 24), f(40, 6, 0x1000), f(50, 6, 0x3000)]},
                      threads={5: "maker", 6: "taker"})
    cls = {x["size_class"]: x for x in report(path, "memory").records()}
    assert (cls[128]["allocs"], cls[128]["bytes"], cls[128]["freed"], cls[128]["live"]) == (2, 200, 1, 1)
    assert cls[32]["unused_pct"] == 25.0
    th = {x["tid"]: x for x in report(path, "memory", by="thread").records()}
    assert (th[5]["allocs"], th[5]["frees"], th[5]["live_bytes"]) == (2, 1, 100)
    assert (th[6]["allocs"], th[6]["frees"], th[6]["live"]) == (1, 2, 0)
    leaks = report(path, "memory", by="leaks")
    assert [(x["buf"], x["thread"]) for x in leaks.records()] == [(0x2000, "maker")]
    assert leaks.extra["frees_without_alloc"] == 1 and leaks.extra["leaked_bytes"] == 100
    model = Model(osvtrace.open(path))
    text = "\n".join(produce("memory", model, {"by": "leaks"}).splitlines())
    assert "0x2000" in text and "1 frees without an allocation" in text


def test_a_bad_report_option_value_is_one_line_and_exit_2(tmp_path):
    path = trace_file(tmp_path, CALLS_TRACE)
    for args in (["list-timed", path, "--sort", "size"], ["memory", path, "--by", "size"]):
        r = run_cli("report", *map(str, args))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "give" in r.stderr, r.stderr
