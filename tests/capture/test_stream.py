"""The stream protocol parser: frames in any split, the sink calls, and clear errors on bad streams."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from osvtrace.capture import stream
from osvtrace.capture.stream import StreamError, StreamParser, encode_frame, encode_meta
from osvtrace.catalog import layout
from osvtrace.format.encode import CpuStreamBuilder
from osvtrace.format.osvt import TraceWriter, new_metadata


class Rec(stream.StreamSink):
    def __init__(self):
        self.calls = []

    def on_meta(self, meta):
        self.calls.append(("meta", meta))

    def on_data(self, cpu, seq, lost, slots, records):
        self.calls.append(("data", cpu, seq, lost, bytes(slots), records))

    def on_threads(self, names):
        self.calls.append(("threads", names))

    def on_end(self, end):
        self.calls.append(("end", end))

    def on_ack(self, ack):
        self.calls.append(("ack", ack))


def _threads(entries: dict[int, str]) -> bytes:
    tab = np.zeros(len(entries), layout.THREAD_ENTRY_DTYPE)
    for i, (tid, name) in enumerate(entries.items()):
        tab[i] = (tid, 0, name.encode())
    return tab.tobytes()


@pytest.fixture
def slots(catalog):
    b = CpuStreamBuilder(catalog)
    b.add("thread_create", [100], 1, tid=5, name="worker-a")  # 2 slots
    b.add("sched_switch", [200], 1, next=5, prev_state=2)
    b.add("trace_marker", [300], 5, value=7, label="x")
    return b.slots().tobytes()


def sample_stream(slots: bytes) -> bytes:
    return b"".join([
        encode_meta(ncpus=2, tsc_hz=1_000_000_000, tsc_boot=5, tp_max=3, ring_slots=1024, cmdline="app=hello",
                    build_id="abcd", enabled=bytes([0, 1, 1, 0]), tsc_offset=[0, -7]),
        encode_frame(stream.THREADS, _threads({1: "idle0", 2: "main"})),
        encode_frame(stream.DATA, slots, cpu=0, seq=0, lost=0),
        encode_frame(stream.DATA, slots[:64], cpu=1, seq=10, lost=3),
        encode_frame(stream.ACK, struct.pack("<IiQ", 7, 2, 99) + b"enabled 2 tracepoints\0"),
        encode_frame(stream.DATA, b"", cpu=1, seq=12, lost=4),
        encode_frame(stream.END, struct.pack("<iIQ", 3, stream.END_APP_EXIT, 1234)),
    ])


def test_frames_reach_the_sink_in_order_with_their_fields(slots):
    sink = Rec()
    p = StreamParser(sink)
    p.feed(sample_stream(slots))
    p.close()
    kinds = [c[0] for c in sink.calls]
    assert kinds == ["meta", "threads", "data", "data", "ack", "data", "end"]
    meta = sink.calls[0][1]
    assert (meta.ncpus, meta.tsc_hz, meta.tsc_boot, meta.ring_slots) == (2, 1_000_000_000, 5, 1024)
    assert meta.tsc_offset == [0, -7] and meta.cmdline == "app=hello" and meta.build_id == "abcd"
    assert meta.enabled.tolist() == [0, 1, 1, 0]
    assert sink.calls[1][1] == {1: "idle0", 2: "main"}
    assert sink.calls[2] == ("data", 0, 0, 0, slots, 3)
    assert sink.calls[3] == ("data", 1, 10, 3, slots[:64], 1)  # the 2-slot thread_create: one record
    ack = sink.calls[4][1]
    assert (ack.id, ack.result, ack.tsc, ack.message) == (7, 2, 99, "enabled 2 tracepoints")
    assert sink.calls[5] == ("data", 1, 12, 4, b"", 0)
    assert sink.calls[6][1] == stream.End(3, stream.END_APP_EXIT, 1234)
    assert p.records == 4 and p.lost == 4 and p.cpus[1].next_seq == 12


@pytest.mark.parametrize("piece", [1, 7, 31, 32, 33, 1000])
def test_any_split_of_the_bytes_gives_the_same_frames(slots, piece):
    data = sample_stream(slots)
    whole, parts = Rec(), Rec()
    StreamParser(whole).feed(data)
    p = StreamParser(parts, capacity=64)  # tiny: forces growing and compaction
    for i in range(0, len(data), piece):
        p.feed(data[i:i + piece])
    p.close()
    assert [repr(c) for c in parts.calls] == [repr(c) for c in whole.calls]
    assert p.offset == len(data)


def test_receive_in_place(slots):
    data = sample_stream(slots)
    sink = Rec()
    p = StreamParser(sink)
    pos = 0
    while pos < len(data):
        room = p.free_space(100)
        k = min(len(room), 100, len(data) - pos)
        room[:k] = data[pos:pos + k]
        pos += k
        p.commit(k)
    assert len(sink.calls) == 7


def test_a_desynchronised_stream_names_the_byte_offset(slots):
    data = bytearray(sample_stream(slots))
    meta_len = len(encode_meta(ncpus=2, tsc_hz=1_000_000_000, tsc_boot=5, tp_max=3, ring_slots=1024,
                               cmdline="app=hello", build_id="abcd", enabled=bytes([0, 1, 1, 0]),
                               tsc_offset=[0, -7]))
    data[meta_len] ^= 0xFF  # the threads frame's magic
    with pytest.raises(StreamError, match=rf"desynchronised at byte {meta_len}: expected a frame header"):
        StreamParser(Rec()).feed(data)


def test_a_sequence_gap_is_a_desynchronisation(slots):
    data = b"".join([encode_meta(ncpus=1, tsc_hz=1),
                     encode_frame(stream.DATA, slots, cpu=0, seq=0),
                     encode_frame(stream.DATA, slots, cpu=0, seq=99)])
    with pytest.raises(StreamError, match=r"CPU 0 continues at slot 99, expected 4"):
        StreamParser(Rec()).feed(data)


@pytest.mark.parametrize("bad,msg", [
    (lambda s: encode_frame(stream.DATA, s, cpu=0), "the first frame must be the meta frame"),
    (lambda s: encode_meta(ncpus=1, tsc_hz=1) + encode_frame(stream.DATA, s, cpu=3), "for CPU 3, but the guest has 1"),
    (lambda s: encode_meta(ncpus=1, tsc_hz=1) + encode_meta(ncpus=1, tsc_hz=1), "a second meta frame"),
    (lambda s: encode_meta(ncpus=1, tsc_hz=1) + struct.pack("<IBBHIIQQ", stream.FRAME_MAGIC, 9, 0, 0, 0, 0, 0, 0),
     "frame type 9"),
    (lambda s: encode_meta(ncpus=1, tsc_hz=1) + struct.pack("<IBBHIIQQ", stream.FRAME_MAGIC, 2, 0, 0, 1 << 30, 0, 0, 0),
     "limit"),
    (lambda s: encode_meta(ncpus=1, tsc_hz=1) + encode_frame(stream.END, struct.pack("<iIQ", 0, 0, 0))
     + encode_frame(stream.DATA, s, cpu=0), "after the end frame"),
])
def test_bad_streams_are_refused_clearly(slots, bad, msg):
    with pytest.raises(StreamError, match=msg):
        StreamParser(Rec()).feed(bad(slots))


def test_a_stream_cut_inside_a_frame(slots):
    data = sample_stream(slots)
    p = StreamParser(Rec())
    p.feed(data[:-10])
    with pytest.raises(StreamError, match="ends inside a frame"):
        p.close()


def test_data_frames_become_chunks_that_decode(tmp_path, catalog, slots):
    """The recorder's path in miniature: every data frame one chunk, then the decoder."""
    import osvtrace

    class ToFile(Rec):
        def on_meta(self, meta):
            self.w = TraceWriter(tmp_path / "s.osvt", new_metadata(catalog, ncpus=meta.ncpus, tsc_hz=meta.tsc_hz))

        def on_data(self, cpu, seq, lost, sl, records):
            if len(sl) or lost:
                self.w.write_chunk(cpu, seq, sl, lost)

    sink = ToFile()
    StreamParser(sink).feed(sample_stream(slots))
    sink.w.close("test")
    t = osvtrace.open(tmp_path / "s.osvt")
    assert len(t) == 4  # 3 records on CPU 0, 1 (the thread_create) on CPU 1
    assert t.loss[1].dropped == 4 and t.loss[0].dropped == 0
    assert not [w for w in t.warnings if "gap" in w]


def test_count_records_is_vectorised_over_header_slots(slots):
    assert stream.count_records(slots) == 3
    assert stream.count_records(b"") == 0


def test_progress_line_text():
    from osvtrace.progress import Progress, human

    assert (human(12), human(118_150), human(2_000_000)) == ("12", "118.15 k", "2.00 M")
    p = Progress(on=False)
    assert p.line(0, 0, {}).startswith("recording 0.0 s | 0 events/s | 0.0 MB/s | 0 events | lost 0")
    assert p.line(5, 64, {0: 0, 1: 12}).endswith("lost cpu0 0, cpu1 12")


# ---------------------------------------------------------------- properties (hypothesis)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

frames_st = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6), st.integers(0, 2), st.integers(0, 5)),
                     min_size=0, max_size=25)  # (cpu, one-slot records, two-slot records, lost increment)


def _guest_stream(catalog, ncpus: int, frames, end: bool) -> tuple[bytes, dict[int, int], dict[int, int]]:
    """A stream as a guest would write it; returns (bytes, records per CPU, final lost per CPU)."""
    out = [encode_meta(ncpus=ncpus, tsc_hz=1_000_000_000, ring_slots=4096)]
    seq: dict[int, int] = {}
    lost: dict[int, int] = {}
    records: dict[int, int] = {}
    clock = 1000
    for k, (cpu, ones, twos, more) in enumerate(frames):
        cpu %= ncpus
        b = CpuStreamBuilder(catalog)
        for _ in range(ones):
            clock += 10
            b.add("trace_marker", [clock], 1, value=k, label="p")
        for _ in range(twos):
            clock += 10
            b.add("thread_create", [clock], 1, tid=k, name=f"t{k}")
        s = b.slots().tobytes()
        lost[cpu] = lost.get(cpu, 0) + more
        out.append(encode_frame(stream.DATA, s, cpu=cpu, seq=seq.get(cpu, 0), lost=lost[cpu]))
        seq[cpu] = seq.get(cpu, 0) + len(s) // 32
        records[cpu] = records.get(cpu, 0) + ones + twos
        if k % 5 == 4:
            out.append(encode_frame(stream.THREADS, _threads({k + 1: f"thr-{k}"})))
            out.append(encode_frame(stream.ACK, struct.pack("<IiQ", k, 0, clock) + b"ok\0"))
    if end:
        out.append(encode_frame(stream.END, struct.pack("<iIQ", 0, stream.END_APP_EXIT, clock)))
    return b"".join(out), records, lost


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 4), frames_st, st.booleans(), st.integers(1, 300))
def test_any_guest_stream_in_any_pieces_is_recorded_whole(tmp_path, catalog, ncpus, frames, end, piece):
    """Through the recorder's parser and sink into a file: every record and every lost count
    the guest sent is in the file, however the bytes arrive."""
    import osvtrace
    from tests.fuzz.stream_parser import check_recording, feed

    data, records, lost = _guest_stream(catalog, ncpus, frames, end)
    rec, err = feed(data, piece, tmp_path / "r.osvt")
    assert err is None
    assert rec.parser.records == sum(records.values()) and (rec.end is not None) == end
    check_recording(rec, tmp_path / "r.osvt")
    t = osvtrace.open(tmp_path / "r.osvt")
    for cpu, n in records.items():
        assert int((t.events.cpu == cpu).sum()) == n
        lc = t.loss.get(cpu)  # a CPU that sent only empty frames with nothing lost has no chunk
        assert (lc.dropped if lc else 0) == lost[cpu] and (lc.gap_slots if lc else 0) == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 4), frames_st, st.data())
def test_a_damaged_stream_is_one_line_and_the_file_holds_what_was_accepted(tmp_path, catalog, ncpus, frames, data):
    """Bytes changed or cut anywhere: a StreamError of one line, or a stream that still parses;
    either way the file opens and holds every slot the parser accepted (the harness' property)."""
    from tests.fuzz.stream_parser import check_recording, feed

    buf = bytearray(_guest_stream(catalog, ncpus, frames, True)[0])
    for _ in range(data.draw(st.integers(0, 6))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        buf = buf[:data.draw(st.integers(0, len(buf)))]
    rec, err = feed(bytes(buf), data.draw(st.integers(1, 500)), tmp_path / "r.osvt")
    assert err is None or ("\n" not in err and err)
    check_recording(rec, tmp_path / "r.osvt")
