"""Bad input: wrong files, truncation at any byte, flipped bits. One clear line, never a crash,
everything intact still decodes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import osvtrace
from osvtrace.errors import TraceFormatError
from osvtrace.format.encode import CpuStreamBuilder
from osvtrace.format.osvt import ALIGN
from tests.support.traces import write_trace


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory):
    from osvtrace.catalog.schema import default_catalog

    cat = default_catalog()
    per = {}
    for cpu in range(2):
        b = CpuStreamBuilder(cat)
        b.add("sched_wake", np.arange(0, 3000, 3) + cpu, 2, tid=5, cpu=cpu)
        b.add("thread_create", [1, 2], 1, tid=[8, 9], name="t")
        per[cpu] = b.slots()
    path = write_trace(tmp_path_factory.mktemp("d") / "good.osvt", per, chunk=128)
    return path.read_bytes()


def reopen(tmp_path, data):
    p = tmp_path / "bad.osvt"
    p.write_bytes(data)
    return osvtrace.open(p)


@pytest.mark.parametrize("data, message", [
    (b"", "not an .osvt trace file"),
    (b"hello world, this is not a trace file at all....", "not an .osvt trace file"),
    (b"OSVTRA", "truncated .osvt file"),
])
def test_wrong_files_get_one_clear_error(tmp_path, data, message):
    with pytest.raises(TraceFormatError, match=message):
        reopen(tmp_path, data)


def test_unknown_version_is_refused_by_name(tmp_path, good_bytes):
    import struct
    import zlib

    data = bytearray(good_bytes)
    data[8:10] = struct.pack("<H", 9)
    data[28:32] = struct.pack("<I", zlib.crc32(bytes(data[:28])))
    with pytest.raises(TraceFormatError, match=r"version 9\.\d+ is not supported"):
        reopen(tmp_path, bytes(data))


def test_missing_file_and_directory_are_clear(tmp_path):
    with pytest.raises(TraceFormatError, match="no such file"):
        osvtrace.open(tmp_path / "nope.osvt")
    with pytest.raises(TraceFormatError, match="is a directory"):
        osvtrace.open(tmp_path)


def test_truncated_file_keeps_every_complete_chunk(tmp_path, good_bytes):
    full = reopen(tmp_path, good_bytes)
    cut = len(good_bytes) - 1000
    t = reopen(tmp_path, good_bytes[:cut])
    assert t.scan.truncated
    assert any("truncated at byte" in w for w in t.warnings)
    assert 0 < len(t) < len(full)
    # what survives is exactly a prefix of each CPU's stream
    for cpu in (0, 1):
        a = full.events.time[full.events.cpu == cpu]
        b = t.events.time[t.events.cpu == cpu]
        assert (a[:len(b)] == b).all()


def test_flipped_bit_in_a_chunk_skips_only_that_chunk(tmp_path, good_bytes):
    full = reopen(tmp_path, good_bytes)
    data = bytearray(good_bytes)
    data[len(data) // 2] ^= 0x10
    t = reopen(tmp_path, bytes(data))
    assert t.scan.damaged_chunks == 1
    assert any("fails its checksum" in w and "byte" in w for w in t.warnings)
    assert len(full) - 128 <= len(t) < len(full)
    # the lost chunk shows up as a gap, even at the end of a CPU's stream (the trailer knows the end)
    assert sum(v.gap_slots for v in t.loss.values()) == len(full) - len(t)


def test_damaged_section_header_resynchronises_on_the_next_section(tmp_path, good_bytes):
    data = bytearray(good_bytes)
    # the second section after the metadata: find the sync words
    syncs = [i for i in range(32, len(data), ALIGN) if data[i:i + 4] == b"OSVS"]
    data[syncs[3] + 8] ^= 0xFF  # body length of a chunk header
    t = reopen(tmp_path, bytes(data))
    assert any("damaged section header" in w for w in t.warnings)
    assert len(t) > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_truncation_or_corruption_never_crashes(tmp_path, good_bytes, data):
    buf = bytearray(good_bytes)
    if data.draw(st.booleans()):
        buf = buf[:data.draw(st.integers(0, len(buf)))]
    for _ in range(data.draw(st.integers(0, 8))):
        if buf:
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] = data.draw(st.integers(0, 255))
    try:
        t = reopen(tmp_path, bytes(buf))
    except TraceFormatError as e:
        assert str(e).startswith(str(tmp_path)) and "\n" not in str(e)
        return
    # decoding never invents records: at most the original count, all well-formed
    assert len(t) <= 2004
    assert set(np.unique(t.events.tp).tolist()) <= {13, 10}
    for i in range(min(len(t), 5)):
        t.format_event(i)
    t.threads


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([0, 1, 10, 12, 13, 55, 0xFFFF, 777]), st.integers(0, 7)),
                min_size=1, max_size=60), st.integers(1, 60))
def test_every_slot_is_a_record_part_or_counted(tmp_path, slots_spec, chunk):
    """Random slot streams (valid checksums, arbitrary framing): nothing crashes, and every
    slot is in a decoded record or counted once as partial or invalid."""
    from osvtrace.catalog.layout import SLOT_DTYPE

    s = np.zeros(len(slots_spec), SLOT_DTYPE)
    for i, (tp, n) in enumerate(slots_spec):
        s[i]["id"], s[i]["nslots"], s[i]["tsc"] = tp, n, i
    t = osvtrace.open(write_trace(tmp_path / "p.osvt", {0: s.view(np.uint8).reshape(-1, 32)}, chunk=chunk))
    used = sum(t.catalog.by_id[int(x)].nslots for x in t.events.tp)
    loss = t.loss[0]
    assert used + loss.partial_slots + loss.invalid_slots == len(s)
    assert (np.diff(t.events.time) >= 0).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_resealed_damage_is_one_line_or_every_slot_accounted(tmp_path, good_bytes, data):
    """Changed bytes with every checksum made good again (a writer bug, not a disk error): the
    reader never fails other than with one line naming the file, and an opened trace puts
    every slot of every chunk in a record or counts it (the fuzz harness' property)."""
    from tests.fuzz import osvt_reader

    buf = bytearray(good_bytes)
    meta_end = 64 + int.from_bytes(good_bytes[40:48], "little")  # most changes behind the schema, in the chunks
    for _ in range(data.draw(st.integers(1, 8))):
        lo = data.draw(st.sampled_from([0, meta_end, meta_end, meta_end]))
        buf[data.draw(st.integers(lo, len(buf) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        buf = buf[:data.draw(st.integers(0, len(buf)))]
    path = tmp_path / "resealed.osvt"
    path.write_bytes(osvt_reader.reseal(bytes(buf)))
    osvt_reader.check_trace(path, model=data.draw(st.booleans()))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 2**20), min_size=1, max_size=12))
def test_damaged_chunks_lose_exactly_their_slots_and_the_loss_is_counted(tmp_path, good_bytes, spots):
    """Bytes flipped inside chunk bodies (the trailer intact): per CPU, the slots decoded plus
    the slots counted missing (gaps, and what precedes the first chunk) equal the slots written."""
    full = reopen(tmp_path, good_bytes)
    chunks = [(c.row * 32, (c.row + c.nslots) * 32) for c in full.scan.chunks]
    buf = bytearray(good_bytes)
    for s in spots:
        a, b = chunks[s % len(chunks)]
        buf[a + (s >> 6) % (b - a)] ^= 1 + s % 255
    t = reopen(tmp_path, bytes(buf))
    assert t.scan.trailer is not None
    nslots = t.catalog.nslots_table()
    for cpu in (0, 1):
        written = int(full.scan.trailer.end_seq[cpu])
        decoded = int(nslots[t.events.tp[t.events.cpu == cpu]].astype(np.int64).sum())
        # a lost first chunk is "overwritten" here: this test file is not a streamed capture
        assert decoded + t.loss[cpu].gap_slots + t.loss[cpu].overwritten_slots == written
        assert decoded == written - sum(c.nslots for c in full.scan.chunks if c.cpu == cpu) \
            + sum(c.nslots for c in t.scan.chunks if c.cpu == cpu)
