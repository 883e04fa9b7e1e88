"""Decoding hand-built traces with known answers."""

from __future__ import annotations

import numpy as np
import pytest

import osvtrace
import osvtrace.format.trace
from osvtrace.catalog import layout
from osvtrace.format.encode import CpuStreamBuilder
from tests.support.traces import write_trace


def names(t):
    return [t.catalog.by_id[int(x)].name for x in t.events.tp]


def test_small_trace_decodes_in_time_order_with_arguments(small_trace):
    t = osvtrace.open(small_trace)
    assert names(t) == ["thread_create", "thread_create", "sched_switch", "mutex_lock_wait", "mutex_lock",
                        "net_packet", "mutex_unlock", "mutex_handoff", "mutex_lock_wake"]
    assert t.events.time.tolist() == [100, 150, 200, 250, 300, 300, 400, 410, 500]
    # ties keep CPU order: cpu 0's mutex_lock before cpu 1's net_packet at t=300
    assert t.events.cpu.tolist() == [0, 1, 0, 1, 0, 1, 0, 0, 1]
    assert t.threads[5] == "worker-a" and t.threads[6] == "worker-b" and t.threads[1] == "main"
    idx, h = t.args("mutex_handoff")
    assert idx.tolist() == [7]
    assert (int(h["mutex"][0]), int(h["from_tid"][0]), int(h["to_tid"][0])) == (0xDEAD0, 5, 6)
    _, p = t.args("net_packet")
    assert bytes(p["data"][0][:60]) == bytes(range(60)) and bytes(p["data"][0][60:]) == bytes(68)
    assert t.format_event(7) == "0xdead0 5(worker-a) -> 6(worker-b)"
    assert all(v.total_missing == 0 for v in t.loss.values())
    assert t.warnings == []


def test_sequence_numbers_count_slots_per_cpu(small_trace):
    t = osvtrace.open(small_trace)
    cpu1 = t.seq[t.events.cpu == 1].tolist()
    assert cpu1 == [0, 2, 3, 9]  # thread_create takes 2 slots, net_packet 6


def test_field_gives_a_full_column_across_tracepoints(small_trace):
    t = osvtrace.open(small_trace)
    mutex, mask = t.field("mutex")
    assert mask.sum() == 5
    assert set(mutex[mask].tolist()) == {0xDEAD0}


def test_tsc_clock_is_scaled_to_ns_with_boot_offset(tmp_path, catalog):
    from osvtrace.format.osvt import TraceWriter, new_metadata

    b = CpuStreamBuilder(catalog)
    b.add("sched_idle", [5_000, 7_500], 3)
    meta = new_metadata(catalog, ncpus=1, tsc_hz=2_500_000_000, tsc_boot=2_500)
    with TraceWriter(tmp_path / "c.osvt", meta) as w:
        w.write_chunk(0, 0, b.slots())
    t = osvtrace.open(tmp_path / "c.osvt")
    assert t.events.time.tolist() == [1_000, 2_000]


def test_a_boot_timestamp_beyond_int64_decodes_modulo_2_to_the_64(tmp_path, catalog):
    # a TSC that wrapped (or a damaged but checksummed clock): no OverflowError, times count on
    from osvtrace.format.osvt import TraceWriter, new_metadata

    b = CpuStreamBuilder(catalog)
    b.add("sched_idle", [5, 7], 3)
    meta = new_metadata(catalog, ncpus=1, tsc_hz=1_000_000_000, tsc_boot=2**64 - 100)
    with TraceWriter(tmp_path / "w.osvt", meta) as w:
        w.write_chunk(0, 0, b.slots())
    assert osvtrace.open(tmp_path / "w.osvt").events.time.tolist() == [105, 107]


@pytest.mark.parametrize("threaded", [False, True])
def test_many_chunks_and_cpus_merge_like_a_sort(tmp_path, catalog, monkeypatch, threaded):
    if threaded:  # a file this small is read by one thread unless told otherwise
        monkeypatch.setattr(osvtrace.format.trace, "PARALLEL_MIN_BYTES", 0)
    rng = np.random.default_rng(3)
    per_cpu = {}
    for cpu in range(4):
        b = CpuStreamBuilder(catalog)
        tsc = np.sort(rng.integers(0, 10_000_000, 50_000))
        b.add("sched_wake", tsc, 10 + cpu, tid=np.arange(50_000) % 7, cpu=cpu)
        per_cpu[cpu] = b.slots()
    t = osvtrace.open(write_trace(tmp_path / "m.osvt", per_cpu, chunk=4096))
    assert len(t) == 200_000
    expect = np.concatenate([per_cpu[c].view(layout.SLOT_DTYPE)["tsc"].ravel() for c in range(4)])
    order = np.argsort(expect, kind="stable")
    assert (t.events.time == expect[order].astype(np.int64)).all()
    cpus = np.repeat(np.arange(4), 50_000)[order]
    assert (t.events.cpu == cpus).all()
    assert (t.events.tid == cpus + 10).all()


def test_gap_between_chunks_is_counted_not_hidden(tmp_path, catalog):
    b = CpuStreamBuilder(catalog)
    b.add("sched_idle", np.arange(100), 1)
    s = b.slots()
    from osvtrace.format.osvt import TraceWriter, new_metadata

    with TraceWriter(tmp_path / "g.osvt", new_metadata(catalog, ncpus=1, tsc_hz=10**9)) as w:
        w.write_chunk(0, 0, s[:40], 0)
        w.write_chunk(0, 60, s[60:], 3)  # slots 40..59 never arrived; the ring dropped 3
    t = osvtrace.open(tmp_path / "g.osvt")
    assert len(t) == 80
    assert t.loss[0].gap_slots == 20 and t.loss[0].gaps == [(40, 20)]
    assert t.loss[0].dropped == 3


def test_flight_recorder_snapshot_starting_mid_record_counts_partial_slots(tmp_path, catalog):
    b = CpuStreamBuilder(catalog)
    b.add("net_packet", [10, 20, 30], 1, packet=[1, 2, 3])
    s = b.slots()  # 18 slots
    t = osvtrace.open(write_trace(tmp_path / "f.osvt", {0: s[4:]}, first_seq={0: 1004}))
    assert len(t) == 2
    assert t.loss[0].partial_slots == 2 and t.loss[0].invalid_slots == 0
    assert t.loss[0].overwritten_slots == 1004


def test_overlapping_chunks_are_deduplicated(tmp_path, catalog):
    b = CpuStreamBuilder(catalog)
    b.add("sched_idle", np.arange(50), 1)
    s = b.slots()
    from osvtrace.format.osvt import TraceWriter, new_metadata

    with TraceWriter(tmp_path / "o.osvt", new_metadata(catalog, ncpus=1, tsc_hz=10**9)) as w:
        w.write_chunk(0, 0, s[:30])
        w.write_chunk(0, 20, s[20:])
    t = osvtrace.open(tmp_path / "o.osvt")
    assert t.events.time.tolist() == list(range(50))
    assert t.loss[0].duplicate_slots == 10


def test_corrupt_record_framing_is_counted_invalid(tmp_path, catalog):
    b = CpuStreamBuilder(catalog)
    b.add("thread_create", [1, 2, 3], 1, tid=[4, 5, 6], name="x")
    s = b.slots().copy()
    s[3, 2] = 9  # second record's continuation claims index 9
    t = osvtrace.open(write_trace(tmp_path / "x.osvt", {0: s}))
    assert len(t) == 2
    assert t.loss[0].invalid_slots == 2  # the broken header and its orphaned continuation


def test_empty_trace_has_no_events_and_no_errors(tmp_path):
    t = osvtrace.open(write_trace(tmp_path / "e.osvt", {}))
    assert len(t) == 0 and t.span_ns == (0, 0)


def test_timestamps_going_backwards_are_reordered_and_reported(tmp_path, catalog):
    b = CpuStreamBuilder(catalog)
    b.add("sched_idle", [10, 20, 30], 1)
    s = b.slots().copy()
    s[[1, 2]] = s[[2, 1]]
    t = osvtrace.open(write_trace(tmp_path / "r.osvt", {0: s}))
    assert t.events.time.tolist() == [10, 20, 30]
    assert t.loss[0].reordered == 2


def test_a_tracepoint_whose_arguments_changed_is_named_and_hidden_from_the_analyses(tmp_path, catalog):
    # the file's schema renamed mutex_lock's arguments: decodable by id, not read by name
    import dataclasses

    from osvtrace.catalog.schema import Catalog
    from osvtrace.format.osvt import TraceWriter, new_metadata

    old = catalog.by_name["mutex_lock"]
    renamed = dataclasses.replace(old, fields=tuple(dataclasses.replace(f, name=f.name + "_v0") for f in old.fields))
    theirs = Catalog([renamed if tp is old else tp for tp in catalog.tracepoints], catalog.enums)
    b = CpuStreamBuilder(theirs)
    b.add("mutex_lock", [10, 20], 3)
    with TraceWriter(tmp_path / "d.osvt", new_metadata(theirs, ncpus=1, tsc_hz=1_000_000_000)) as w:
        w.write_chunk(0, 0, b.slots())
    t = osvtrace.open(tmp_path / "d.osvt")
    assert len(t) == 2 and set(t.events.tp.tolist()) == {old.id}
    assert "mutex_lock" not in t.catalog.by_name and old.id in t.catalog.by_id
    assert any("mutex_lock" in w and "lacks arguments" in w for w in t.warnings)
