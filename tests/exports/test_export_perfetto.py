"""Perfetto export, re-parsed with the protobuf classes of the `perfetto` package: the TrackEvent
part (mutexes, hand-offs, packets, markers, lost records, waits on known objects). The ftrace
scheduling and the callstack samples: tests/exports/test_perfetto_kernel.py."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

import osvtrace
from osvtrace.cli.main import main
from osvtrace.exports import Options, export, perfetto
from osvtrace.exports.timeline import ARGS, FLOW_END, FLOW_NONE, FLOW_START, Items
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from tests.support.exports import net_trace

from tests.support.perfetto_read import BEGIN, END, INSTANT, Parsed


def _export(model, tmp_path, **filters) -> Parsed:
    out = tmp_path / "t.pftrace"
    export(model, "perfetto", out, Options(Filter(**filters)))
    return Parsed(out)


def test_story_tracks_slices_and_flows_equal_the_model(story, tmp_path):
    p = _export(story, tmp_path)
    p.check_nesting()
    # one slice per row of each table (rows of zero length become instants); scheduling is
    # ftrace now, so thread tracks keep only the waits whose object is known
    known = (story.thread_state["blocked_on"] != 0) & (story.thread_state["dur"] > 0)
    expect = {"waiter": int((story.mutex_wait["dur"] > 0).sum()), "mutex": int((story.mutex_hold["dur"] > 0).sum()),
              "thread": int(known.sum())}
    begins, ends = p.count(BEGIN), p.count(END)
    assert dict(begins) == dict(ends) == expect
    # tracks: the CPU that lost records, the threads with waits or markers, one mutex with one waiter (b)
    kinds = Counter(p.kind(u) for u in p.tracks)
    assert kinds["cpu"] == 1 and kinds["mutex"] == 1 and kinds["waiter"] == 1
    assert [d.name for d in p.tracks.values() if p.kind(d.uuid) == "waiter"] == ["waiter b"]
    threads = {d.thread.tid: d.thread.thread_name for d in p.tracks.values() if d.HasField("thread")}
    assert threads == {1: "main", 2: "a", 3: "b"}
    assert sum(d.HasField("process") for d in p.tracks.values()) == 1
    # flows: the hand-off a -> b only (wake-ups are sched_waking events now)
    starts, ends_ = p.flows()
    handed = int((story.handoff["latency"] >= 0).sum())
    assert len(starts) == len(ends_) == handed == 1
    dest = [p.names[e.track_event.name_iid] for _, _, e in p.events if e.track_event.terminating_flow_ids]
    assert dest == ["b"]  # b's hold of the mutex
    # instants: the hand-off, two markers, the lost records of CPU 1
    assert sorted(p.named(INSTANT)) == ["LOST records (ring full)", "end", "end", "hand-off to b"]
    lost = [e.track_event for _, _, e in p.events if p.names.get(e.track_event.name_iid, "").startswith("LOST")]
    assert lost[0].debug_annotations[0].uint_value == 5
    assert p.tracks[lost[0].track_uuid].name == "CPU 1"
    assert p.tracks[p.tracks[lost[0].track_uuid].parent_uuid].name == "CPU events"


def test_waits_carry_their_object(story, tmp_path):
    p = _export(story, tmp_path)
    waiting = [e.track_event for _, _, e in p.events
               if e.track_event.type == BEGIN and p.names[e.track_event.name_iid] == "waiting"]
    objs = sorted(a.pointer_value for w in waiting for a in w.debug_annotations
                  if p.arg_names[a.name_iid] == "blocked_on")
    assert objs == [0xA000, 0xB000]


def test_packet_hops_are_one_flow_through_the_stages(tmp_path):
    m = Model(osvtrace.open(net_trace(tmp_path / "net.osvt")))
    p = _export(m, tmp_path)
    p.check_nesting()
    stages = [(ts, p.names[e.track_event.name_iid], list(e.track_event.flow_ids),
               list(e.track_event.terminating_flow_ids))
              for ts, _, e in sorted(p.events, key=lambda x: x[:2])
              if p.names.get(e.track_event.name_iid, "").startswith("net ")]
    assert [s[:2] for s in stages] == [(101, "net rx"), (110, "net classify"), (120, "net push"), (200, "net pop"),
                                       (300, "net rx")]
    flow = stages[0][2][0]
    assert [s[2] for s in stages[:3]] == [[flow]] * 3 and stages[3][3] == [flow]
    assert stages[4][2:] == ([], [])  # packet 10 was seen once: no arrow


def test_filters_narrow_tracks_and_clip_slices(story, tmp_path):
    p = _export(story, tmp_path, cpus=[1])
    assert {b.cpu for b in p.bundles} == {1}
    assert len(p.switches) == int(((story.sched_slice["cpu"] == 1) & ((story.sched_slice["clipped"] & 1) == 0)).sum())
    p = _export(story, tmp_path, since=250, until=450)
    p.check_nesting()
    assert all(250 <= ts <= 450 for ts, _, _ in p.events)
    assert all(250 <= s.ts < 450 for s in p.switches) and all(250 <= w.ts < 450 for w in p.wakings)
    assert p.flows()[0] == p.flows()[1]  # flows keep both ends or neither


def test_vectorised_packets_equal_the_protobuf_library():
    """Every shape the encoder groups by (varint lengths 1..10, pointer and uint arguments,
    flows), byte for byte against TracePacket.SerializeToString()."""
    rng = np.random.default_rng(5)
    n = 400
    big = [1 << (7 * k) for k in range(10)]  # one value of each varint length
    ts = np.array([min(int(rng.choice(big[:9])) + int(rng.integers(0, 100)), 1 << 61) for _ in range(n)], np.int64)
    p = Items("t", rng.integers(1, 20000, n).astype(np.int64), ts, np.full(n, 5, np.int64),
              rng.integers(0, 300, n).astype(np.int32),
              np.array([int(rng.choice(big)) + 3 for _ in range(n)], np.uint64),
              rng.integers(-1, len(ARGS), n).astype(np.int8), rng.integers(0, 1 << 63, n).astype(np.uint64),
              np.zeros(n, np.uint8), rng.choice([FLOW_NONE, FLOW_START, FLOW_END], n).astype(np.uint8))
    for kind in (perfetto.TYPE_SLICE_BEGIN, perfetto.TYPE_INSTANT, perfetto.TYPE_SLICE_END):
        blob = b"".join(m.tobytes() for m in perfetto.encode(p, kind))
        got = pb.Trace()
        got.ParseFromString(blob)
        assert len(got.packet) == n
        total = 0
        for i in range(n):
            q = pb.TracePacket()
            q.timestamp = int(ts[i] + (p.dur[i] if kind == perfetto.TYPE_SLICE_END else 0))
            q.trusted_packet_sequence_id = perfetto.SEQUENCE_ID
            q.sequence_flags = perfetto.SEQ_NEEDS_INCREMENTAL_STATE
            e = q.track_event
            e.type = kind
            e.track_uuid = int(p.track[i])
            if kind != perfetto.TYPE_SLICE_END:
                e.name_iid = int(p.name[i]) + 1
                if p.arg_name[i] >= 0:
                    a = e.debug_annotations.add(name_iid=int(p.arg_name[i]) + 1)
                    if ARGS[p.arg_name[i]][1] == 2:
                        a.pointer_value = int(p.arg[i])
                    else:
                        a.uint_value = int(p.arg[i])
                if p.flow_kind[i] == FLOW_END:
                    e.terminating_flow_ids.append(int(p.flow[i]))
                elif p.flow_kind[i] != FLOW_NONE:
                    e.flow_ids.append(int(p.flow[i]))
            t = pb.Trace()
            t.packet.append(q)
            wire = t.SerializeToString()
            assert wire in blob, f"row {i}: {q}"
            total += len(wire)
        assert total == len(blob)


def test_thread_zero_is_a_plain_track(tmp_path, catalog):
    from osvtrace.format.encode import CpuStreamBuilder
    from tests.support.traces import write_trace

    c0 = CpuStreamBuilder(catalog)
    c0.add("sched_switch", [10], 0, next=2, prev_state=1)
    c0.add("sched_switch", [20], 2, next=0, prev_state=1)
    c0.add("trace_marker", [30], 0, value=1, label="x")
    p = _export(Model(osvtrace.open(write_trace(tmp_path / "z.osvt", {0: c0.slots()}))), tmp_path)
    zero = [d for d in p.tracks.values() if d.name == "kernel (tid 0)"]
    assert len(zero) == 1 and not zero[0].HasField("thread")
    assert all(d.thread.tid != 0 for d in p.tracks.values() if d.HasField("thread"))
    p.check_nesting()


def test_cli_writes_a_perfetto_trace(story_file, tmp_path, capsys):
    out = tmp_path / "cli.pftrace"
    assert main(["export", str(story_file), "--format", "perfetto", "-o", str(out)]) == 0
    assert "sched_switch" in capsys.readouterr().out
    Parsed(out).check_nesting()


@pytest.mark.parametrize("fmt", ["perfetto", "chrome"])
def test_empty_selection_still_writes_a_valid_file(story, tmp_path, fmt):
    out = tmp_path / f"empty.{fmt}"
    res = export(story, fmt, out, Options(Filter(since=10_000)))
    assert res.counts["slices"] == 0 and out.stat().st_size > 0
