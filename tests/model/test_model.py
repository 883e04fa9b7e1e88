"""Golden tests: tiny hand-built traces, every table, the expected rows inline."""

from __future__ import annotations

import numpy as np

import osvtrace
from osvtrace.format.encode import CpuStreamBuilder
from osvtrace.model import SPECS, Model
from tests.support.traces import M, Q, write_trace


def rows(t, cols=None):
    return [tuple(r[c] for c in (cols or list(t.columns))) for r in t.rows()]


def test_sched_slice_includes_the_slice_running_when_the_trace_began(story):
    assert rows(story.sched_slice) == [
        (0, 1, 100, 100, 1, 1),
        (1, 3, 150, 30, 2, 1),
        (1, 9, 180, 125, 1, 0),
        (0, 2, 200, 310, 2, 0),
        (1, 3, 305, 495, 0, 2),
        (0, 1, 510, 190, 0, 2),
    ]


def test_thread_state_follows_run_wait_wake_run(story):
    ts = story.thread_state
    b = [r for r in rows(ts) if r[0] == 3]
    assert b == [(3, 150, 30, 0, 1, 0), (3, 180, 120, 2, 1, M), (3, 300, 5, 1, 1, 0), (3, 305, 495, 0, 1, 0)]
    a = [r for r in rows(ts) if r[0] == 2]
    assert a == [(2, 200, 310, 0, 0, 0), (2, 510, 290, 2, 0, Q)]


def test_wakeup_latency_is_wake_to_running(story):
    assert rows(story.wakeup) == [(300, 2, 3, 0, 1, 1, 5)]


def test_mutex_wait_hold_and_handoff(story):
    assert rows(story.mutex_wait)[0][:6] == (M, 3, 160, 290, 2, True)
    assert [r[:6] for r in rows(story.mutex_hold)] == [(M, 2, 210, 190, False, True), (M, 3, 450, 10, True, True)]
    # each row names the record that began it: where its stack comes from
    ev, cat = story.trace.events, story.trace.catalog

    def began(t):
        return [(cat.by_id[int(ev.tp[i])].name, int(ev.time[i])) for i in t["event"].tolist()]

    assert began(story.mutex_wait) == [("mutex_lock_wait", 160)]
    assert began(story.mutex_hold) == [("mutex_lock", 210), ("mutex_lock_wake", 450)]
    assert rows(story.handoff) == [(401, M, 2, 3, 0, 1, 49)]


def test_lost_places_drops_on_the_timeline(story):
    assert rows(story.lost) == [(1, 455, 5, "dropped")]
    assert story.trace.loss[1].dropped == 5


def test_threads_table_lists_a_thread_that_never_ran(story):
    th = {r["tid"]: r for r in story.threads.rows()}
    assert th[4]["name"] == "never-ran" and th[4]["events"] == 0 and th[4]["cpu_time"] == 0 and th[4]["first"] == -1
    assert th[3]["cpu_time"] == 30 + 495 and th[3]["slices"] == 2
    assert th[2]["name"] == "a"


def test_chain_of_handoffs(tmp_path, catalog):
    c = CpuStreamBuilder(catalog)
    c.add("mutex_lock", [10], 1, mutex=M)
    for i, tid in enumerate((2, 3)):
        c.add("mutex_lock", [20 + i], tid, mutex=M)
        c.add("mutex_lock_wait", [22 + i], tid, mutex=M)
    c.add("mutex_unlock", [30], 1, mutex=M)
    c.add("mutex_handoff", [31], 1, mutex=M, from_tid=1, to_tid=2)
    c.add("mutex_lock_wake", [40], 2, mutex=M)
    c.add("mutex_unlock", [50], 2, mutex=M)
    c.add("mutex_handoff", [51], 2, mutex=M, from_tid=2, to_tid=3)
    c.add("mutex_lock_wake", [60], 3, mutex=M)
    c.add("mutex_unlock", [70], 3, mutex=M)
    m = Model(osvtrace.open(write_trace(tmp_path / "c.osvt", {0: c.slots()})))
    assert rows(m.handoff, ["from_tid", "to_tid", "latency"]) == [(1, 2, 9), (2, 3, 9)]
    assert rows(m.mutex_wait, ["tid", "start", "dur", "handed_by"]) == [(2, 22, 18, 1), (3, 23, 37, 2)]
    assert rows(m.mutex_hold, ["tid", "start", "dur", "contended"]) == [(1, 10, 20, False), (2, 40, 10, True),
                                                                        (3, 60, 10, True)]


def test_packet_flow_follows_each_packet_through_the_stages(tmp_path, catalog):
    c0 = CpuStreamBuilder(catalog)
    c0.add("net_rx", [10, 11], 5, packet=[1, 2], len=[60, 70], queue=0)
    c0.add("net_classify", [12, 13], 5, packet=[1, 2], channel=[0xC0, 0], result=[0, 2])
    c0.add("net_channel_push", [14], 5, packet=1, channel=0xC0, depth=1)
    c1 = CpuStreamBuilder(catalog)
    c1.add("net_channel_pop", [20], 6, packet=1, channel=0xC0, depth=0)
    c1.add("net_tx", [25], 6, packet=1, len=60)
    m = Model(osvtrace.open(write_trace(tmp_path / "n.osvt", {0: c0.slots(), 1: c1.slots()})))
    f = {r["packet"]: r for r in m.packet_flow.rows()}
    assert (f[1]["rx_time"], f[1]["pop_time"], f[1]["tx_time"], f[1]["latency"]) == (10, 20, 25, 15)
    assert f[1]["cpu_hops"] == 1 and f[1]["consumer"] == 6 and f[1]["channel"] == 0xC0 and not f[1]["dropped"]
    assert f[2]["dropped"] and f[2]["push_time"] == -1 and f[2]["len"] == 70


def test_every_table_builds_on_an_empty_trace(tmp_path):
    m = Model(osvtrace.open(write_trace(tmp_path / "e.osvt", {})))
    for name in m.names():
        if name != "tracepoints":  # the schema itself is never empty
            assert len(m.table(name)) == 0, name


def test_every_table_and_column_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "tables.md").read_text()
    for spec in SPECS.values():
        assert f"## {spec.name}" in doc
        for c in spec.columns:
            assert f"| `{c.name}` |" in doc, (spec.name, c.name)


def test_big_synthetic_trace_tables_are_consistent(tmp_path):
    from osvtrace.format import synth

    p = tmp_path / "s.osvt"
    synth.generate(p, 200_000, 2)
    m = Model(osvtrace.open(p))
    s = m.sched_slice
    assert (s["dur"] >= 0).all()
    # per CPU, slices tile time without overlap
    for c in (0, 1):
        sel = s["cpu"] == c
        st, du = s["start"][sel], s["dur"][sel]
        assert (st[1:] == st[:-1] + du[:-1]).all()
    assert (m.thread_state["dur"] >= 0).all()
    assert (m.wakeup["latency"] >= -1).all()
    assert np.isin(m.handoff["to_tid"], m.threads["tid"]).all()


def test_lost_places_a_gap_at_the_first_record_after_it(tmp_path, catalog):
    from osvtrace.format.osvt import TraceWriter, new_metadata

    b = CpuStreamBuilder(catalog)
    b.add("sched_idle", np.arange(100) * 10, 1)
    s = b.slots()
    with TraceWriter(tmp_path / "g.osvt", new_metadata(catalog, ncpus=2, tsc_hz=10**9)) as w:
        w.write_chunk(1, 0, s[:40])
        w.write_chunk(1, 60, s[60:])
    m = Model(osvtrace.open(tmp_path / "g.osvt"))
    assert rows(m.lost) == [(1, 600, 20, "gap")]
