"""OSv's trace records decoded from both of its file formats (written here exactly as OSv
writes them, osvtrace.format.osv_synth): every record, argument, pascal string, blob,
backtrace and thread name comes back, in time order, and no bytes make the reader fail
with anything but one clear line."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import osvtrace
from osvtrace.errors import OsvtraceError
from osvtrace.format.osv_dump import OsvTrace
from osvtrace.format.osv_records import OsvTracepoint
from osvtrace.format.osv_synth import Rec, dump, tracefile

SCALAR = {"c": (0, 255), "b": (-128, 127), "B": (0, 255), "?": (0, 1), "h": (-2**15, 2**15 - 1), "H": (0, 2**16 - 1),
          "i": (-2**31, 2**31 - 1), "I": (0, 2**32 - 1), "q": (-2**63, 2**63 - 1), "Q": (0, 2**64 - 1),
          "P": (0, 2**64 - 1)}


def _arg(c: str):
    if c == "p":
        return st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
    if c == "*":
        return st.binary(max_size=80)
    lo, hi = SCALAR[c]
    return st.integers(lo, hi)


@st.composite
def traces(draw):
    ntp = draw(st.integers(1, 5))
    sigs = [draw(st.text(st.sampled_from(list(SCALAR) + ["p", "*"]), max_size=5)) for _ in range(ntp)]
    names = [draw(st.sampled_from(["sched_wait", "mutex_lock", "net_packet_in", "tp_a"])) for _ in range(ntp)]
    tps = [OsvTracepoint(0xFFFF_FFFF_8040_0000 + 0x40 * i, names[i], sigs[i], "x") for i in range(ntp)]
    ncpu = draw(st.integers(1, 4))
    threads = [(0xFFFF_8000_0010_0000 + 0x1000 * k, f"thr{k}" * draw(st.integers(1, 4))) for k in range(4)]
    per_cpu = []
    for cpu in range(ncpu):
        n = draw(st.integers(0, 12))
        times = sorted(draw(st.lists(st.integers(0, 10**10), min_size=n, max_size=n)))
        recs = []
        for t in times:
            i = draw(st.integers(0, ntp - 1))
            ptr, tname = threads[draw(st.integers(0, 3))]
            args = tuple(draw(_arg(c)) for c in sigs[i])
            bt = draw(st.lists(st.integers(1, 2**64 - 1), max_size=10))
            recs.append(Rec(tps[i].key, ptr, tname, t, cpu, args, bt))
        per_cpu.append(recs)
    return tps, per_cpu


def _check(t: OsvTrace, tps, per_cpu, tracefile_kind: bool) -> None:
    recs = [r for rs in per_cpu for r in rs]
    assert len(t) == len(recs)
    assert (np.diff(t.events.time) >= 0).all()
    assert sorted(t.events.time.tolist()) == sorted(r.time for r in recs)
    by_key = {tp.key: tp for tp in tps}
    # each event's record, matched by (time, cpu, key) in its CPU's order
    pending: dict = {}
    for r in recs:
        pending.setdefault((r.time, r.cpu, r.key), []).append(r)
    for i in range(len(t)):
        key = t.tracepoint_key(int(t.events.tp[i]))
        r = pending[(int(t.events.time[i]), int(t.events.cpu[i]), key)].pop(0)
        assert t.thread_name(int(t.events.tid[i])) == r.name[:16]
        tp = t.catalog.by_id[int(t.events.tp[i])]
        for a, c in enumerate(by_key[key].sig):
            v = t.field_values(tp.field(f"a{a}"), t.events.row[i:i + 1])[0]
            want = r.args[a]
            if c == "p":
                assert v == want.encode()[:49]
            elif c == "*":
                n = int(t.field_values(tp.field(f"a{a}_len"), t.events.row[i:i + 1])[0])
                assert n == len(want) and bytes(v[:n]) == want
            else:
                assert int(v) == want
        bt = [int(x) for x in t.backtraces(np.array([i]))[0] if x]
        assert bt == [f for f in r.backtrace if f][:10]
    # thread ids are small, dense and stable (by thread pointer), with the names records carry
    assert set(t.threads) >= set(t.tids().tolist())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(traces(), st.integers(0, 255))
def test_both_formats_give_back_every_record_argument_string_blob_and_frame(tmp_path, data, stale):
    tps, per_cpu = data
    d = tmp_path / "t.dump"
    d.write_bytes(dump(tps, per_cpu, stale=stale))  # stale: old ring bytes behind pascal strings
    t = osvtrace.open(d)
    assert isinstance(t, OsvTrace) and t.facts.kind == "osv-dump" and not t.facts.damage
    _check(t, tps, per_cpu, False)
    merged = sorted((r for rs in per_cpu for r in rs), key=lambda r: (r.time, r.cpu))
    f = tmp_path / "tracefile"
    f.write_bytes(tracefile(tps, merged))
    t2 = osvtrace.open(f)
    assert t2.facts.kind == "osv-tracefile" and not t2.facts.damage
    _check(t2, tps, per_cpu, True)
    assert t2.events.time.tolist() == t.events.time.tolist()
    assert t2.events.tid.tolist() == t.events.tid.tolist()  # the same threads get the same ids


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(traces(), st.data())
def test_any_cut_or_changed_bytes_open_or_fail_in_one_line(tmp_path, data, draw):
    tps, per_cpu = data
    for raw, name in ((dump(tps, per_cpu), "t.dump"),
                      (tracefile(tps, sorted((r for rs in per_cpu for r in rs), key=lambda r: r.time)), "tf")):
        buf = bytearray(raw)
        if draw.draw(st.booleans()):
            buf = buf[:draw.draw(st.integers(0, len(buf)))]
        for _ in range(draw.draw(st.integers(0, 4))):
            if buf:
                buf[draw.draw(st.integers(0, len(buf) - 1))] = draw.draw(st.integers(0, 255))
        p = tmp_path / name
        p.write_bytes(bytes(buf))
        try:
            t = osvtrace.open(p)
        except OsvtraceError as e:
            assert "\n" not in str(e) and str(p) in str(e)
            continue
        assert (np.diff(t.events.time) >= 0).all()
        for tp in t.catalog.tracepoints:  # every argument of every record is readable
            idx = np.nonzero(t.events.tp == tp.id)[0]
            for f in tp.fields:
                assert len(t.field_values(f, t.events.row[idx])) == len(idx)
        if len(t):
            t.format_event(0)


def _tps():
    return [OsvTracepoint(0x1000, "sched_wait", "", "wait"), OsvTracepoint(0x1040, "tp_s", "pQ", "s=%s q=%d"),
            OsvTracepoint(0x1080, "sched_wait", "", "wait")]


def test_one_name_with_two_keys_gets_two_ids_and_args_reads_both(tmp_path):
    recs = [[Rec(0x1000, 0xA0, "a", 10, 0), Rec(0x1080, 0xA0, "a", 20, 0), Rec(0x1040, 0xB0, "b", 30, 0, ("hi", 7))]]
    p = tmp_path / "d"
    p.write_bytes(dump(_tps(), recs))
    t = osvtrace.open(p)
    ids = t.tracepoint_ids("sched_wait")
    assert len(ids) == 2 and {t.catalog.by_id[i].name for i in ids} == {"sched_wait"}
    assert all("one of 2 keys named sched_wait" in t.catalog.by_id[i].doc for i in ids)
    idx, _ = t.args("tp_s")
    assert len(idx) == 1 and t.format_event(int(idx[0])) == "s=hi q=7"


def test_a_cpu_whose_data_starts_late_is_reported_not_a_quiet_gap(tmp_path):
    recs = [[Rec(0x1040, 0xA0, "a", 1_000_000_000 + k, 0, ("x", k)) for k in range(3)],
            [Rec(0x1040, 0xB0, "b", 4_000_000_000 + k, 1, ("y", k)) for k in range(3)]]
    p = tmp_path / "d"
    p.write_bytes(dump(_tps(), recs))
    t = osvtrace.open(p)
    assert t.cpu_starts() == {0: 1_000_000_000, 1: 4_000_000_000}
    assert any(w.startswith("cpu1's data starts 3.000 s after cpu0's") for w in t.warnings), t.warnings
    assert not any(w.startswith("cpu0's") for w in t.warnings)


def test_records_of_another_tracepoint_key_stop_that_cpu_with_a_warning(tmp_path):
    recs = [[Rec(0x1000, 0xA0, "a", 10, 0), Rec(0x1000, 0xA0, "a", 20, 0)], [Rec(0x1000, 0xB0, "b", 15, 1)]]
    raw = bytearray(dump(_tps(), recs))
    second = raw.index(struct.pack("<QQ", 0x1000, 0xA0), raw.index(struct.pack("<QQ", 0x1000, 0xA0)) + 1)
    raw[second:second + 8] = struct.pack("<Q", 0xDEAD)
    p = tmp_path / "d"
    p.write_bytes(bytes(raw))
    t = osvtrace.open(p)
    assert len(t) == 2
    assert any(f"offset {second}: a record with unknown tracepoint key 0xdead" in w for w in t.facts.damage)


@pytest.mark.parametrize("kind", ["dump", "tracefile"])
def test_an_empty_trace_opens(tmp_path, kind):
    p = tmp_path / "e"
    p.write_bytes(dump(_tps(), [[], []]) if kind == "dump" else tracefile(_tps(), []))
    t = osvtrace.open(p)
    assert len(t) == 0 and t.span_ns == (0, 0)


@settings(max_examples=40, deadline=None)
@given(traces(), st.integers(0, 2), st.integers(1, 80), st.booleans())
def test_a_raw_ring_buffer_decodes_with_the_same_walk_as_the_dump(data, pages, laps, writing):
    """A per-CPU buffer read from guest memory (page padding, silent wrap, a record still
    being written) goes through the same code as a dump's TRCS chunk."""
    from osvtrace.format import osv_records as R
    from osvtrace.format.osv_synth import ring

    tps, per_cpu = data
    base = per_cpu[0]
    span = max((r.time for r in base), default=0) + 1
    recs = [Rec(r.key, r.thread, r.name, r.time + k * span, 0, r.args, r.backtrace) for k in range(laps) for r in base]
    size = 4096 << pages  # a power of two, as OSv's; small, so that long runs wrap
    buf, last = ring(tps, recs, size, writing=writing)
    d = R.Dictionary(tps)
    rec = R.walk(np.frombuffer(buf, np.uint8), R.ring_runs(size, last), d, tracefile=False, page=4096, bt_len=10)
    o = R.order(rec, merged=False)
    got = [(int(t), d.by_id(int(tp)).key) for t, tp in zip(o.time, o.tp)]
    # what survives: the newest records that fit, in order (a wrapped ring lost the oldest ones)
    want = [(r.time, r.key) for r in recs[:len(recs) - 1 if writing else len(recs)]]
    assert got == want[len(want) - len(got):]
    assert not rec.problems
    if last <= size:  # the ring never wrapped: nothing was overwritten
        assert len(got) == len(want)
