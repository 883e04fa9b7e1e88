"""Reports and SQL on traces with known answers, through the library and the CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import osvtrace
from osvtrace.format.encode import CpuStreamBuilder
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.reports import REGISTRY, Options
from tests.support.traces import ROOT, M, Q, write_trace


def run_report(model, name, flt=None, **opts):
    return {r.get("tid", r.get("mutex", r.get("cpu"))): r
            for r in REGISTRY[name].fn(model, flt or Filter(), Options(**opts)).records()}


def cli(*args):
    r = subprocess.run([sys.executable, "-m", "osvtrace.cli.main", *map(str, args)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_sched_report_totals_cpu_time_and_why_threads_stopped(story):
    r = run_report(story, "sched")
    assert r[3]["cpu_time"] == 525 and r[3]["slices"] == 2 and r[3]["waited"] == 1 and r[3]["max"] == 495
    assert r[1]["preempted"] == 1
    assert r[2]["cpu_time"] == 310


def test_sched_report_clips_to_the_time_window(story):
    r = run_report(story, "sched", Filter(since=250, until=350))
    assert r[2]["cpu_time"] == 100  # a ran 200..510: 100 ns of it inside 250..350
    assert r[3]["cpu_time"] == 45  # b from 305


def test_wakeup_report_percentiles(story):
    r = run_report(story, "wakeup")
    assert r[3]["wakeups"] == 1 and r[3]["p50"] == 5 and r[3]["p99"] == 5 and r[3]["cross_cpu"] == 1


def test_mutex_report_counts_contention_and_handoffs(story):
    r = run_report(story, "mutex")[M]
    assert (r["acquisitions"], r["contended"], r["handoffs"], r["waits"]) == (2, 1, 1, 1)
    assert r["wait_total"] == 290 and r["wait_max"] == 290 and r["hold_max"] == 190


def test_prof_lock_and_prof_wait_flat_tables_per_thread_and_object(story):
    flat = Options(more={"flat": True})
    pl = REGISTRY["prof-lock"].fn(story, Filter(), flat).records()
    assert [(x["mutex"], x["tid"], x["total"]) for x in pl] == [(M, 3, 290)]
    pw = {(x["tid"], x["object"]): x["total"] for x in REGISTRY["prof-wait"].fn(story, Filter(), flat).records()}
    assert pw[(3, M)] == 120 and pw[(2, Q)] == 290


def test_cpu_report_load_picture(story):
    rep = REGISTRY["cpu"].fn(story, Filter(), Options(buckets=7))
    rows = {r["cpu"]: r for r in rep.records()}
    assert rows[1]["busy"] == 525 and rows[1]["idle"] == 125  # idle1 is the idle thread
    assert len(rep.extra["load"]["1"]) == 7 and all(0 <= x <= 1 for x in rep.extra["load"]["1"])
    assert rep.picture[1].startswith("cpu0") and "|" in rep.picture[1]


def test_lhp_finds_a_preempted_owner_with_waiters(tmp_path, catalog):
    c0 = CpuStreamBuilder(catalog)
    c0.add("mutex_lock", [100], 2, mutex=M)  # 2 owns M
    c0.add("sched_switch", [200], 2, next=5, prev_state=1)  # ... and is preempted by 5
    c0.add("sched_switch", [600], 5, next=2, prev_state=1)  # back at 600
    c0.add("mutex_unlock", [650], 2, mutex=M)
    c0.add("mutex_handoff", [651], 2, mutex=M, from_tid=2, to_tid=3)
    c1 = CpuStreamBuilder(catalog)
    c1.add("mutex_lock", [300], 3, mutex=M)
    c1.add("mutex_lock_wait", [301], 3, mutex=M)
    c1.add("mutex_lock_wake", [700], 3, mutex=M)
    c1.add("mutex_unlock", [710], 3, mutex=M)
    m = Model(osvtrace.open(write_trace(tmp_path / "l.osvt", {0: c0.slots(), 1: c1.slots()})))
    rows = REGISTRY["lhp"].fn(m, Filter(), Options()).records()
    assert len(rows) == 1
    r = rows[0]
    assert (r["mutex"], r["holder"], r["start"], r["dur"], r["holder_was"], r["waiters"]) == (M, 2, 200, 400,
                                                                                           "preempted", 1)


def test_every_report_runs_through_the_cli_in_every_format(story_file):
    for name in (s.name for s in REGISTRY.values() if s.table):
        assert cli("report", name, story_file)
        data = json.loads(cli("report", name, story_file, "--json"))
        assert "rows" in data
        rows = list(csv.reader(io.StringIO(cli("report", name, story_file, "--csv"))))
        assert len(rows) == len(data["rows"]) + 1


def test_query_runs_sql_over_model_and_tracepoint_tables(story_file):
    out = json.loads(cli("query", story_file, "select tid, sum(dur) as t from sched_slice group by tid order by tid",
                         "--format", "json"))
    assert {r["tid"]: r["t"] for r in out} == {1: 290, 2: 310, 3: 525, 9: 125}
    out = json.loads(cli("query", story_file, "select from_tid, to_tid from mutex_handoff", "--format", "json"))
    assert out == [{"from_tid": 2, "to_tid": 3}]
    out = json.loads(cli("query", story_file, "select name from thread_create order by time", "--format", "json"))
    assert [r["name"] for r in out] == ["a", "b"]
    text = cli("query", story_file, "select count(*) as n from events")
    assert text.split() == ["n", "19"]


def test_bad_sql_is_one_line(story_file):
    r = subprocess.run([sys.executable, "-m", "osvtrace.cli.main", "query", str(story_file), "select nope from x"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("osvtrace: SQL:") and len(r.stderr.splitlines()) == 1
