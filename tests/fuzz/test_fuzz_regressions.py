"""One test per bug the fuzzers found (docs/reliability.md lists them), each built from the
writer or the encoder rather than a saved crash input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import osvtrace
from tests.fuzz import osvt_reader, stream_parser
from osvtrace.capture import stream
from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, Field
from osvtrace.errors import TraceFormatError
from osvtrace.format import osvt
from osvtrace.format.encode import CpuStreamBuilder
from osvtrace.format.osvt import TraceWriter, new_metadata
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.reports import REGISTRY, Options
from tests.support.traces import write_trace


def _with_tracepoint(cat: Catalog, which: str, /, **change: object) -> Catalog:
    """The catalog with one tracepoint changed (as a damaged or foreign file would carry it)."""
    tps = [dataclasses.replace(tp, **change) if tp.name == which else tp for tp in cat.tracepoints]
    return Catalog(tps, cat.enums)


def _write(path, cat: Catalog, slots: np.ndarray, **chunk: int):
    w = TraceWriter(path, new_metadata(cat, ncpus=1, tsc_hz=1_000_000_000, capture="test"))
    w.write_chunk(chunk.get("cpu", 0), chunk.get("first_seq", 0), slots, chunk.get("lost", 0))
    w.close("test")
    return path


def test_mutex_report_counts_a_handoff_of_a_mutex_never_locked_in_the_trace(tmp_path, catalog):
    b = CpuStreamBuilder(catalog)
    b.add("mutex_lock", [100], 2, mutex=0xA000)
    b.add("mutex_handoff", [200], 2, mutex=0xF000, from_tid=2, to_tid=3)  # its lock is before the trace
    m = Model(osvtrace.open(write_trace(tmp_path / "h.osvt", {0: b.slots()})))
    rows = {r["mutex"]: r for r in REGISTRY["mutex"].fn(m, Filter(), Options()).records()}
    assert rows[0xF000]["handoffs"] == 1 and rows[0xF000]["acquisitions"] == 0
    assert rows[0xA000]["acquisitions"] == 1 and rows[0xA000]["handoffs"] == 0


def test_meta_frame_with_an_implausible_clock_is_a_stream_error(tmp_path):
    # tsc_start centuries after tsc_boot made the recorder's wall-clock date overflow
    data = stream.encode_meta(ncpus=1, tsc_hz=1000, tsc_boot=0, tsc_start=1 << 62)
    rec, err = stream_parser.feed(data, 64, tmp_path / "r.osvt")
    assert err is not None and "clock is not plausible" in err and rec.writer is None
    ok = stream.encode_meta(ncpus=1, tsc_hz=2_000_000_000, tsc_boot=10, tsc_start=10 + 3600 * 2_000_000_000)
    rec, err = stream_parser.feed(ok, 64, tmp_path / "r.osvt")
    assert err is None and rec.writer is not None


@pytest.mark.parametrize("change, why", [
    ({"fields": (Field("tid", "u32", 4, 4000), Field("name", "str", 12, 4))}, "does not fit"),  # past the record
    ({"fields": (Field("tid", "u64", 4, 0),)}, "does not fit"),  # size that is not the type's
    ({"fields": (Field("tid", "u32", 4, 14),)}, "does not fit"),  # straddles the first slot
    ({"fields": (Field("tid", "bytes", 0, 0),)}, "does not fit"),  # an empty blob
    ({"nslots": 0}, "takes 0 slots"),
    ({"id": 0x10000}, "id outside"),
    ({"name": "thread\ncreate"}, "not an identifier"),
])
def test_a_damaged_embedded_schema_is_one_clear_error(tmp_path, catalog, change, why):
    cat = _with_tracepoint(catalog, "thread_create", **change)
    b = CpuStreamBuilder(catalog)
    b.add("thread_create", [100], 1, tid=5, name="w")
    path = _write(tmp_path / "s.osvt", cat, b.slots())
    with pytest.raises(TraceFormatError, match=why) as e:
        osvtrace.open(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value) and "damaged schema" in str(e.value)


def test_a_known_tracepoint_without_the_arguments_the_analyses_read_is_left_out_of_them(tmp_path, catalog):
    # thread_create without its tid, and mutex_handoff without to_tid: both used to raise KeyError
    tc, ho = catalog.by_name["thread_create"], catalog.by_name["mutex_handoff"]
    cat = _with_tracepoint(catalog, "thread_create", fields=tuple(f for f in tc.fields if f.name != "tid"))
    cat = _with_tracepoint(cat, "mutex_handoff",
                           fields=tuple(dataclasses.replace(f, name="to_thread") if f.name == "to_tid" else f
                                        for f in ho.fields))
    b = CpuStreamBuilder(catalog)
    b.add("thread_create", [100], 1, tid=5, name="w")
    b.add("mutex_handoff", [200], 5, mutex=0xA000, from_tid=5, to_tid=6)
    t = osvtrace.open(_write(tmp_path / "s.osvt", cat, b.slots()))
    assert len(t) == 2 and "thread_create" not in t.catalog.by_name and "mutex_handoff" not in t.catalog.by_name
    assert sum("left out of the analyses" in w for w in t.warnings) == 2
    assert t.threads[5] == "thread-5"  # no name from the hidden tracepoint, and no error
    assert "mutex_handoff" in t.format_event(1) or "to_thread" in t.format_event(1)
    m = Model(t)
    assert len(m.handoff) == 0
    REGISTRY["mutex"].fn(m, Filter(), Options())


@pytest.mark.parametrize("chunk, what", [
    ({"first_seq": 1 << 63}, "seq 9223372036854775808"),
    ({"lost": (1 << 64) - 1}, "lost 18446744073709551615"),
    ({"cpu": 4000}, "cpu 4000"),
])
def test_a_chunk_header_with_counters_no_ring_reaches_is_skipped(tmp_path, catalog, chunk, what):
    b = CpuStreamBuilder(catalog)
    b.add("trace_marker", [100, 200], 1, value=1, label="x")
    t = osvtrace.open(_write(tmp_path / "c.osvt", catalog, b.slots(), **chunk))
    assert len(t) == 0 and t.scan.damaged_chunks == 1
    assert any(what in w and "skipped" in w for w in t.warnings)
    t.seq  # noqa: B018  (raised OverflowError on a 2^63 sequence number)


def test_a_streamed_trace_whose_first_chunk_is_damaged_counts_it_as_a_gap(tmp_path, catalog):
    """Found by hypothesis: the slots of a lost first chunk were reported as overwritten
    flight-recorder slots, outside the lost total, although a stream starts at slot 0."""
    b = CpuStreamBuilder(catalog)
    b.add("trace_marker", np.arange(100, 200), 1, value=1, label="x")
    w = TraceWriter(tmp_path / "v.osvt", new_metadata(catalog, ncpus=1, tsc_hz=1_000_000_000, capture="virtio"))
    s = b.slots()
    for i in range(0, 100, 25):
        w.write_chunk(0, i, s[i:i + 25])
    w.close("test")
    data = bytearray((tmp_path / "v.osvt").read_bytes())
    first = osvtrace.open(tmp_path / "v.osvt").scan.chunks[0]
    data[first.row * 32 + 8] ^= 1  # a timestamp in the first chunk: its checksum fails
    (tmp_path / "v.osvt").write_bytes(bytes(data))
    t = osvtrace.open(tmp_path / "v.osvt")
    assert len(t) == 75 and t.loss[0].gap_slots == 25 and t.loss[0].overwritten_slots == 0
    assert t.loss[0].gaps == [(0, 25)] and t.loss[0].total_missing == 25


def test_a_format_from_the_file_that_reaches_for_attributes_falls_back_to_name_value(tmp_path, catalog):
    cat = _with_tracepoint(catalog, "trace_marker", format="{value.x}")  # AttributeError, uncaught before
    b = CpuStreamBuilder(catalog)
    b.add("trace_marker", [100], 1, value=7, label="x")
    t = osvtrace.open(_write(tmp_path / "f.osvt", cat, b.slots()))
    assert "value=7" in t.format_event(0)


def test_the_reader_harness_accepts_its_seeds_sealed_and_unsealed(tmp_path, monkeypatch):
    from tests.fuzz import seeds

    monkeypatch.setattr(osvt_reader, "PATH", tmp_path / "seed.osvt")

    for data in seeds.harness_inputs("osvt"):
        osvt_reader.one_input(data)
        osvt_reader.one_input(bytes([data[0] | 1]) + data[1:])
    assert osvt_reader.reseal(seeds.traces()[0]) == seeds.traces()[0]  # a good file is already sealed
    assert layout.SLOT_SIZE == osvt.ALIGN


@pytest.mark.parametrize("frame, what", [
    ({"seq": (1 << 63) - 2}, "slot 9223372036854775806"),
    ({"lost": 10561665234349588480}, "lost 10561665234349588480"),
])
def test_a_data_frame_with_counters_no_ring_reaches_is_a_stream_error(tmp_path, frame, what):
    """Found by the stream harness: the recorder wrote such a frame, and the reader then
    (rightly) skipped the chunk, so slots the parser had counted were not in the file."""
    s = np.zeros((3, 32), np.uint8)
    s[:, 0], s[:, 2] = 2, 1  # three one-slot trace_marker records
    data = stream.encode_meta(ncpus=1, tsc_hz=1_000_000_000) + stream.encode_frame(stream.DATA, s.tobytes(), **frame)
    rec, err = stream_parser.feed(data, 1000, tmp_path / "r.osvt")
    assert err is not None and what in err and "desynchronised" in err
    stream_parser.check_recording(rec, tmp_path / "r.osvt")  # nothing counted that the file lacks


@pytest.mark.parametrize("target", ["//apimet[!", "http://[::1/api/meta", "//[/"])
def test_a_request_target_urlsplit_refuses_is_a_400(target):
    """Found by the viewer harness: urlsplit's ValueError escaped the handler."""
    from tests.fuzz import viewer_api

    status, body = viewer_api.check_answer(target, "127.0.0.1")
    assert status == 400 and b"bad request target" in body


def test_a_trace_whose_timestamps_are_centuries_apart_is_one_line_from_the_viewer(tmp_path, catalog, capsys):
    """Found by hypothesis (test_cli_damage, a re-sealed timestamp): the lane index raised a
    bare ValueError, a traceback from `view --static`."""
    from osvtrace.cli.main import main

    b = CpuStreamBuilder(catalog)
    for k, t in enumerate([100, 200, 300, 2**61]):  # four threads on CPU 0: four keys of its lane
        b.add("sched_switch", [t], 1 + k, next=2 + k, prev_state=1)
    path = write_trace(tmp_path / "far.osvt", {0: b.slots()})
    assert main(["report", "summary", str(path)]) == 0  # the other commands read it
    capsys.readouterr()
    assert main(["view", str(path), "--static", "-o", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err.splitlines()  # the page's progress lines, then the error
    assert err[-1].startswith("osvtrace: the viewer cannot index") and "centuries apart" in err[-1]
    assert all(ln.startswith("  ") for ln in err[:-1])


def test_the_osv_reader_harness_accepts_its_seeds_and_cut_copies_of_them(tmp_path, monkeypatch):
    from tests.fuzz import osv_reader, seeds

    monkeypatch.setattr(osv_reader, "PATH", tmp_path / "seed.dump")
    for data in seeds.harness_inputs("osv"):
        osv_reader.one_input(data)
        for cut in range(1, len(data), max(1, len(data) // 40)):  # every length a crash reaches first
            osv_reader.one_input(data[:cut])
    (tmp_path / "d").write_bytes(seeds.osv_files()[0])
    t = osvtrace.open(tmp_path / "d")
    assert len(t) == 24 and len(t.tracepoint_ids("mutex_lock")) == 2
