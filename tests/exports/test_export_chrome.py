"""Chrome Trace Event JSON export, re-parsed with json."""

from __future__ import annotations

import json
from collections import Counter

import osvtrace
from osvtrace.cli.main import main
from osvtrace.exports import Options, chrome, export
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from tests.support.exports import net_trace


def _load(model, tmp_path, **filters) -> list[dict]:
    out = tmp_path / "t.json"
    export(model, "chrome", out, Options(Filter(**filters)))
    doc = json.loads(out.read_text())
    assert doc["displayTimeUnit"] == "ns"
    return doc["traceEvents"]


O = chrome.TID_OFFSET  # a row's tid is its key (guest tid, CPU) plus this


def _names(events: list[dict]) -> dict[tuple[int, int], str]:
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}


def test_story_slices_flows_instants_and_names(story, tmp_path):
    ev = _load(story, tmp_path)
    rows = _names(ev)
    assert rows[(1, 0 + O)] == "CPU 0" and rows[(1, 1 + O)] == "CPU 1"
    assert rows[(2, 3 + O)] == "b (3)" and rows[(3, 1)] == "mutex 0xa000" and rows[(3, 2)] == "mutex 0xa000 waiter b"
    procs = {e["pid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
    assert procs == {1: "CPUs", 2: "threads", 3: "mutexes"}
    slices = [e for e in ev if e["ph"] == "X" and e["dur"] > 0]
    per_row = Counter((e["pid"], e["tid"] if e["pid"] == 3 else 0) for e in slices)
    assert per_row[(1, 0)] == len(story.sched_slice) and per_row[(2, 0)] == len(story.thread_state)
    assert per_row[(3, 1)] == len(story.mutex_hold) and per_row[(3, 2)] == len(story.mutex_wait)
    # CPU 0: main, a, main at the times of the switches (µs with ns decimals)
    cpu0 = sorted((e["ts"], e["dur"], e["name"]) for e in slices if (e["pid"], e["tid"]) == (1, 0 + O))
    assert cpu0 == [(0.1, 0.1, "main"), (0.2, 0.31, "a"), (0.51, 0.19, "main")]
    waiting = sorted(e["args"]["blocked_on"] for e in slices if e["name"] == "waiting")
    assert waiting == ["0xa000", "0xb000"]
    # flows: a start and a finish per arrow, bound to slices
    flows = [e for e in ev if e["ph"] in "stf"]
    by_id = {}
    for e in flows:
        by_id.setdefault(e["id"], []).append(e["ph"])
    assert sorted(sorted(v) for v in by_id.values()) == [["f", "s"], ["f", "s"]]
    wake_src = next(e for e in flows if e["ph"] == "s" and e["pid"] == 1)
    assert (wake_src["ts"], wake_src["tid"]) == (0.3, 0 + O)
    assert all(e["bp"] == "e" and e["cat"] == "flow" for e in flows)
    # instants: markers and the lost records (arrow ends are zero-length slices instead)
    inst = sorted((e["name"], e["pid"], e["tid"], e["ts"]) for e in ev if e["ph"] == "i")
    assert inst == [("LOST records (ring full)", 1, 1 + O, 0.455), ("end", 2, 1 + O, 0.7), ("end", 2, 3 + O, 0.8)]
    assert next(e for e in ev if e["ph"] == "i" and e["name"].startswith("LOST"))["args"] == {"count": 5}


def test_packet_stages_chain_with_steps(tmp_path):
    ev = _load(Model(osvtrace.open(net_trace(tmp_path / "net.osvt"))), tmp_path)
    chain = sorted((e["ts"], e["ph"]) for e in ev if e["ph"] in "stf")
    assert chain == [(0.101, "s"), (0.11, "t"), (0.12, "t"), (0.2, "f")]


def test_time_window_clips_slices(story, tmp_path):
    ev = _load(story, tmp_path, since=250, until=450)
    xs = [e for e in ev if e["ph"] == "X"]
    assert xs and all(0.25 <= e["ts"] and e["ts"] + e["dur"] <= 0.45 + 1e-9 for e in xs)
    ids = Counter(e["id"] for e in ev if e["ph"] in "stf")
    assert all(v == 2 for v in ids.values())


def test_big_exports_warn_about_chrome_tracing(story_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(chrome, "CHROME_LIMIT", 10)
    out = tmp_path / "big.json"
    assert main(["export", str(story_file), "--format", "chrome", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "chrome://tracing fails above" in err and "--format perfetto" in err
    json.loads(out.read_text())


def test_names_are_escaped(tmp_path, catalog):
    from osvtrace.format.encode import CpuStreamBuilder
    from tests.support.traces import write_trace

    c0 = CpuStreamBuilder(catalog)
    c0.add("sched_switch", [10], 1, next=2, prev_state=1)
    c0.add("trace_marker", [20], 2, value=1, label='a"b\\c')
    path = write_trace(tmp_path / "q.osvt", {0: c0.slots()}, threads={1: 'we"ird\nname', 2: "x"})
    ev = _load(Model(osvtrace.open(path)), tmp_path)
    assert any(e["name"] == 'a"b\\c' for e in ev if e["ph"] == "i")
    assert _names(ev)[(2, 1 + O)] == 'we"ird\nname (1)'


def test_no_row_is_tid_0_and_tid_minus_offset_is_the_guest_tid(tmp_path, catalog):
    """Chrome and Perfetto take tid 0 for the idle task: guest thread 0 (code outside any
    thread) and CPU 0 are shifted like every other row, in events, metadata and flows."""
    from osvtrace.format.encode import CpuStreamBuilder
    from tests.support.traces import write_trace

    assert O > 0
    c0 = CpuStreamBuilder(catalog)
    c0.add("sched_switch", [10], 0, next=2, prev_state=1)
    c0.add("sched_wake", [15], 2, tid=0, cpu=0)
    c0.add("sched_switch", [20], 2, next=0, prev_state=1)
    c0.add("trace_marker", [30], 0, value=1, label="x")
    model = Model(osvtrace.open(write_trace(tmp_path / "z.osvt", {0: c0.slots()}, threads={2: "w"})))
    ev = _load(model, tmp_path)
    assert ev and all(e["tid"] != 0 for e in ev)
    assert {e["ph"] for e in ev} >= {"M", "X", "i", "s", "f"}
    # threads (pid 2): the row's name carries the guest tid, tid - offset is it
    for (pid, tid), name in _names(ev).items():
        if pid == 2:
            assert name.endswith(f"({tid - O})")
        elif pid == 1:
            assert name == f"CPU {tid - O}"
    guest = {e["tid"] - O for e in ev if e["pid"] == 2 and e["ph"] != "M"}
    assert guest == set(model.thread_state["tid"].tolist()) == {0, 2}
    assert {e["tid"] - O for e in ev if e["pid"] == 1} == {0}
    # the marker of thread 0 is on thread 0's row; CPU slices' "tid" argument is the guest's, unshifted
    marker = next(e for e in ev if e["ph"] == "i" and e["name"] == "x")
    assert (marker["pid"], marker["tid"] - O) == (2, 0)
    assert sorted(e["args"]["tid"] for e in ev if e["pid"] == 1 and e["ph"] == "X" and e["dur"] > 0) == [0, 2]
    procs = [e for e in ev if e["ph"] == "M" and e["name"].startswith("process_")]
    assert procs and all(e["tid"] == min(r["tid"] for r in ev if r["pid"] == e["pid"]) for e in procs)
