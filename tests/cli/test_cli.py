"""The command line as a user meets it: outputs, filters, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.traces import ROOT


def run(*args, ok=True):
    r = subprocess.run([sys.executable, "-m", "osvtrace.cli.main", *map(str, args)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def test_version():
    assert "osvtrace, version" in run("--version").stdout


def test_tracepoints_lists_the_schema_as_text_and_json():
    assert "mutex_handoff" in run("tracepoints").stdout
    data = json.loads(run("tracepoints", "--json").stdout)
    h = next(d for d in data if d["name"] == "mutex_handoff")
    assert [a["name"] for a in h["args"]] == ["mutex", "from_tid", "to_tid"]
    assert h["stack"] == "optional" and next(d for d in data if d["name"] == "cpu_sample")["stack"] == "always"


def test_summary_counts_per_tracepoint_and_cpu(small_trace):
    s = json.loads(run("report", "summary", small_trace, "--json").stdout)
    counts = {r["tracepoint"]: r["per_cpu"] for r in s["tracepoints"]}
    assert counts["thread_create"] == [1, 1]
    assert counts["net_packet"] == [0, 1]
    assert s["events"] == 9 and s["duration_ns"] == 400 and s["lost_total"] == 0
    assert {t["name"] for t in s["threads"]} >= {"worker-a", "worker-b"}
    text = run("report", "summary", small_trace).stdout
    assert "mutex_handoff" in text and "lost: 0" in text


def test_list_filters_by_tracepoint_cpu_thread_and_time(small_trace):
    out = run("report", "list", small_trace, "--tp", "mutex_*", "--cpu", "0").stdout.splitlines()
    assert [ln.split()[3] for ln in out] == ["mutex_lock", "mutex_unlock", "mutex_handoff"]
    out = run("report", "list", small_trace, "--thread", "worker-b").stdout.splitlines()
    assert len(out) == 3 and all(ln.startswith("worker-b") for ln in out)
    out = run("report", "list", small_trace, "--since", "250ns", "--until", "400ns").stdout.splitlines()
    assert [ln.split()[2] for ln in out] == ["0.000000250", "0.000000300", "0.000000300"]
    out = run("report", "list", small_trace, "--limit", "2").stdout.splitlines()
    assert len(out) == 2
    line = run("report", "list", small_trace, "--tp", "mutex_handoff").stdout
    assert "0xdead0 5(worker-a) -> 6(worker-b)" in line
    rec = json.loads(run("report", "list", small_trace, "--tp", "net_packet", "--json").stdout)
    assert rec["args"]["len"] == 60 and rec["thread"] == "worker-b"


def test_info_describes_the_file(small_trace):
    out = run("info", small_trace).stdout
    assert "9 events" in out and "2 CPU(s)" in out and "complete" in out


@pytest.mark.parametrize("args, message", [
    (("info", "/etc/passwd"), "not an .osvt trace file"),
    (("info", "/nonexistent.osvt"), "no such file"),
    (("report", "list", "{trace}", "--tp", "nope"), "matches no tracepoint"),
    (("report", "list", "{trace}", "--cpu", "7"), "the trace has CPUs 0..1"),
    (("report", "list", "{trace}", "--since", "soon"), "cannot read 'soon' as a time"),
    (("report", "list", "{trace}", "--thread", "ghost"), "no thread of that name"),
])
def test_user_mistakes_get_one_line_and_status_2(small_trace, args, message):
    r = run(*[a.format(trace=small_trace) for a in args], ok=False)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_damaged_trace_reports_what_survives_with_a_warning(tmp_path, small_trace):
    data = small_trace.read_bytes()
    bad = tmp_path / "cut.osvt"
    bad.write_bytes(data[:-100])
    r = run("report", "summary", bad, ok=False)
    assert "warning" in r.stderr and "truncated" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.returncode == 3 and "events" in r.stdout  # what survives is reported; the status says it was damaged
