"""Stack trailers in .osvt records (docs/format.md "Stack trailer"), decoded from files built
with the encoder, the Python twin of the kernel's writer: frames come back as written,
innermost first and 0-padded, records without one cost nothing, damage stays contained."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import osvtrace
from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, default_catalog
from osvtrace.format import osvt
from osvtrace.format.encode import CpuStreamBuilder, encode, with_stack
from osvtrace.format.proto import osvt_pb2
from tests.support.traces import write_trace

M = 0x1D1640


def _frames(n: int, depth: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0x100000, 0x200000, (n, depth), dtype=np.uint64)


def test_frames_come_back_as_written_innermost_first_and_zero_padded(tmp_path, catalog):
    b = CpuStreamBuilder(catalog)
    written = {}
    t0 = 1000
    for depth, end in ((0, layout.STACK_BAD_FRAME), (1, layout.STACK_COMPLETE), (3, layout.STACK_LOOP),
                       (4, layout.STACK_COMPLETE), (16, layout.STACK_CUT)):
        fr = _frames(5, depth, depth)
        tsc = np.arange(5, dtype=np.uint64) * 100 + t0
        b.add("mutex_lock_wait", tsc, 7, frames=fr, stack_end=end, mutex=M + depth)
        written[depth] = (fr, end)
        t0 += 10
    b.add("mutex_lock_wait", np.arange(5, dtype=np.uint64) * 100 + 5000, 7, mutex=M - 1)  # no stack
    b.add("thread_create", [9000], 1, frames=_frames(1, 5, 9), tid=8, name="two-slot")  # 2 fixed slots
    t = osvtrace.open(write_trace(tmp_path / "s.osvt", {0: b.slots()}))
    assert t.loss[0].invalid_slots == 0 and t.loss[0].partial_slots == 0
    idx, a = t.args("mutex_lock_wait")
    bt, ends = t.backtraces(idx), t.backtrace_ends(idx)
    assert bt.dtype == np.uint64 and bt.shape == (len(idx), 16)
    for depth, (fr, end) in written.items():
        rows = np.nonzero(a["mutex"] == M + depth)[0]
        np.testing.assert_array_equal(bt[rows, :depth], fr)
        assert (bt[rows, depth:] == 0).all()
        assert (ends[rows] == end).all()
    plain = a["mutex"] == M - 1
    assert (bt[plain] == 0).all() and (ends[plain] == layout.STACK_NONE).all()
    # the arguments of stacked records are where they always are
    assert sorted(set(a["mutex"].tolist())) == sorted([M - 1] + [M + d for d in written])
    ci, ca = t.args("thread_create")
    assert ca["name"][0] == b"two-slot"
    np.testing.assert_array_equal(t.backtraces(ci)[0], _frames(1, 5, 9)[0])


def test_an_empty_selection_and_a_trace_without_stacks_give_no_columns(tmp_path, catalog):
    b = CpuStreamBuilder(catalog)
    b.add("mutex_lock", [10, 20], 3, mutex=M)
    t = osvtrace.open(write_trace(tmp_path / "p.osvt", {0: b.slots()}))
    assert t.backtraces(np.arange(len(t))).shape == (2, 0)
    assert t.backtraces(np.zeros(0, np.int64)).shape == (0, 0)
    assert t.backtrace_ends(np.zeros(0, np.int64)).shape == (0,)


def test_a_record_without_a_stack_takes_exactly_its_schema_slots(catalog):
    # the zero-cost promise, at the layout level: no flag, no trailer, not one byte more
    for tp in catalog.active():
        plain = encode(tp, [1], 1)
        assert plain.shape == (1, tp.nslots, layout.SLOT_SIZE)
        assert plain[0, 0, 3] & layout.FLAG_STACK == 0
    tp = catalog.by_name["mutex_lock_wait"]
    for depth in range(layout.STACK_MAX_FRAMES + 1):
        stacked = with_stack(encode(tp, [1], 1), _frames(1, depth, depth))
        assert stacked.shape[1] == tp.nslots + layout.stack_slots(depth)
    assert layout.stack_slots(layout.STACK_MAX_FRAMES) == layout.STACK_MAX_SLOTS == 6


def test_a_damaged_depth_byte_reads_no_frame_beyond_the_trailer(tmp_path, catalog):
    b = CpuStreamBuilder(catalog)
    b.add("mutex_lock_wait", [10], 3, frames=_frames(1, 2, 1), mutex=M)
    b.add("trace_marker", [20], 3, value=0xFFFFFFFFFFFFFFFF, label="after")
    slots = b.slots()
    slots[1, layout.STACK_DEPTH_OFFSET] = 200  # the trailer holds one slot: three frames at most
    t = osvtrace.open(write_trace(tmp_path / "d.osvt", {0: slots}))
    bt = t.backtraces(np.arange(len(t)))
    assert bt.shape[1] == 3
    np.testing.assert_array_equal(bt[0, :2], _frames(1, 2, 1)[0])
    assert bt[0, 2] == 0 and (bt[1] == 0).all()  # never the next record's bytes


def test_a_stack_flag_on_a_tracepoint_that_takes_none_breaks_the_framing(tmp_path, catalog):
    b = CpuStreamBuilder(catalog)
    b.add("trace_lost", [10], 3, frames=_frames(1, 2, 1), count=4)  # stack = "none" in the schema
    b.add("mutex_lock", [20], 3, mutex=M)
    t = osvtrace.open(write_trace(tmp_path / "n.osvt", {0: b.slots()}))
    assert t.loss[0].invalid_slots == 2 and len(t) == 1


def _without_stacks(cat: Catalog) -> Catalog:
    return Catalog([dataclasses.replace(tp, stack="none") for tp in cat.tracepoints], cat.enums)


def test_a_file_from_before_stacks_decodes_and_its_schema_says_none(tmp_path, catalog):
    old = _without_stacks(catalog)
    b = CpuStreamBuilder(old)
    b.add("mutex_lock", [10, 20], 3, mutex=M)
    path = write_trace(tmp_path / "old.osvt", {0: b.slots()}, catalog=old)
    t = osvtrace.open(path)
    assert len(t) == 2 and t.backtraces(np.arange(2)).shape == (2, 0)
    # what a 1.0 writer left in the schema: no stack field at all
    s = osvt.schema_to_proto(catalog)
    for p in s.tracepoints:
        p.ClearField("stack")
    assert all(tp.stack == "none" for tp in osvt.schema_from_proto(osvt_pb2.Schema.FromString(s.SerializeToString()))
               .tracepoints)


def test_a_damaged_stack_mode_in_the_schema_is_refused_by_name():
    s = osvt.schema_to_proto(default_catalog())
    s.tracepoints[0].stack = "sometimes"
    with pytest.raises(osvtrace.errors.TraceFormatError, match="stack mode 'sometimes'"):
        osvt.schema_from_proto(s, "x.osvt")
