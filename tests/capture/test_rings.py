"""osvtrace.capture.rings against a synthetic guest memory image built from the layouts (no QEMU)."""

from __future__ import annotations

import numpy as np
import pytest

import osvtrace
from osvtrace.capture import rings
from osvtrace.catalog import layout
from osvtrace.catalog.schema import default_catalog
from osvtrace.format.encode import CpuStreamBuilder

BASE = 0x100000
CONTROL = 0x101000
RING0 = 0x102000
THREADS = 0x103000
ENABLED = 0x104000
STRINGS = 0x105000
SLOTS0 = 0x110000
TSC_HZ = 1_000_000_000


class Memory:
    """A flat guest-physical image with a read(addr, size) like gdb's or the RAM file's."""

    def __init__(self, size: int = 2 << 20):
        self.buf = bytearray(size)
        self.reads: list[tuple[int, int]] = []
        self.on_read = None  # hook: called after a read, to model the writer running meanwhile

    def put(self, addr: int, data: bytes) -> None:
        self.buf[addr - BASE:addr - BASE + len(data)] = data

    def put_u(self, addr: int, value: int, size: int = 8, signed: bool = False) -> None:
        self.put(addr, value.to_bytes(size, "little", signed=signed))

    def read(self, addr: int, size: int) -> bytes:
        if addr < BASE or addr + size > BASE + len(self.buf):
            raise OSError(f"Cannot access memory at address {addr:#x}")
        self.reads.append((addr, size))
        data = bytes(self.buf[addr - BASE:addr - BASE + size])
        if self.on_read:
            self.on_read(addr, size)
        return data


def put_fields(mem: Memory, base: int, fields: dict, values: dict) -> None:
    for name, v in values.items():
        off, typ = fields[name]
        mem.put(base + off, np.array([v], typ).tobytes())


def image(records: np.ndarray, *, nslots: int, committed: int, head: int | None = None, lost: int = 0,
          mode: int = layout.RING_MODE_OVERWRITE, tail: int = 0, enabled_ids=(12,)) -> Memory:
    """Memory with a control block, one ring whose absolute slot i holds records[i]."""
    mem = Memory()
    cat = default_catalog()
    put_fields(mem, CONTROL, layout.CONTROL_FIELDS, dict(
        magic=layout.CONTROL_MAGIC, version=1, ncpus=1, tsc_hz=TSC_HZ, tsc_boot=1000, enabled_addr=ENABLED,
        tp_max=cat.max_id, slot_size=32, threads_addr=THREADS, threads_max=8, log_size=0, log_addr=0,
        log_head=0, cmdline_addr=STRINGS, build_id_addr=STRINGS + 256))
    mem.put_u(CONTROL + layout.CONTROL_FIELDS["rings"][0], RING0)
    mem.put_u(CONTROL + layout.CONTROL_FIELDS["tsc_offset"][0], 0)
    mem.put(STRINGS, b"app=pingpong 3 trace=sched_*\0")
    mem.put(STRINGS + 256, b"feedface\0")
    for tid, name in ((1, b"idle0"), (2, b"main"), (3, b"ping"), (4, b"pong")):
        mem.put(THREADS + 32 * tid, np.array([(tid, 1 if tid == 4 else 0, name)],
                                             layout.THREAD_ENTRY_DTYPE).tobytes())
    for i in enabled_ids:
        mem.put(ENABLED + i, b"\1")
    put_fields(mem, RING0, layout.RING_FIELDS, dict(
        magic=layout.RING_MAGIC, cpu=0, mode=mode, nslots=nslots, mask=nslots - 1, slots_addr=SLOTS0,
        head=committed if head is None else head, committed=committed, lost=lost, pending_lost=0, tail=tail))
    slots = np.zeros((nslots, 32), np.uint8)
    for i in range(max(0, committed - nslots), committed):
        slots[i % nslots] = records[i]
    mem.put(SLOTS0, slots.tobytes())
    return mem


def switches(n: int, *, with_creates: bool = False) -> np.ndarray:
    """n sched_switch records (tsc 1000 + 10 i) alternating threads 3 and 4, each a slot;
    with_creates puts a two-slot thread_create after every fourth switch."""
    cat = default_catalog()
    b = CpuStreamBuilder(cat)
    i = np.arange(n)
    b.add("sched_switch", 1000 + 10 * i, np.where(i % 2, 4, 3), next=np.where(i % 2, 3, 4), prev_state=2)
    if with_creates:
        k = np.arange(0, n, 4)
        b.add("thread_create", 1005 + 10 * k, 2, tid=5, name="worker")
    return b.slots()


def test_unwrapped_ring_round_trips(tmp_path):
    recs = switches(10)
    mem = image(recs, nslots=64, committed=10)
    snap = rings.snapshot(mem.read, CONTROL)
    assert snap.control.ncpus == 1 and snap.control.tsc_hz == TSC_HZ
    assert snap.threads == {1: "idle0", 2: "main", 3: "ping", 4: "pong"} and snap.exited == {4}
    assert snap.cmdline == "app=pingpong 3 trace=sched_*" and snap.build_id == "feedface"
    (c,) = snap.chunks
    assert (c.first_seq, c.nslots) == (0, 10)
    # the slots move in one bulk read, of the committed slots only (the ring has not wrapped)
    assert [(a, s) for a, s in mem.reads if a >= SLOTS0] == [(SLOTS0, 10 * 32)]
    out = tmp_path / "t.osvt"
    rings.write_osvt(snap, out, capture="gdb", status="test")
    t = osvtrace.open(out)
    assert len(t) == 10 and t.meta.capture == "gdb" and t.meta.cmdline == snap.cmdline
    assert t.meta.extra["enabled"] == "sched_switch"
    assert t.threads[3] == "ping"
    assert t.seq.tolist() == list(range(10))
    assert t.loss[0].gap_slots == 0 and t.loss[0].overwritten_slots == 0
    assert (np.diff(t.events.time) >= 0).all()


def test_wrapped_ring_is_rotated_into_sequence_order(tmp_path):
    n, nslots = 150, 64
    recs = switches(n)
    mem = image(recs, nslots=nslots, committed=n, lost=7)
    (c,) = rings.snapshot(mem.read, CONTROL).chunks
    assert (c.first_seq, c.nslots, c.lost_total) == (n - nslots, nslots, 7)
    assert [(a, s) for a, s in mem.reads if a >= SLOTS0] == [(SLOTS0, nslots * 32)]  # the whole array, once
    assert np.array_equal(c.slots.reshape(-1, 32), recs[n - nslots:n])
    out = tmp_path / "w.osvt"
    rings.write_osvt(rings.snapshot(mem.read, CONTROL), out, capture="gdb")
    t = osvtrace.open(out)
    assert t.seq.tolist() == list(range(n - nslots, n))
    assert t.loss[0].overwritten_slots == n - nslots and t.loss[0].gap_slots == 0
    assert t.loss[0].dropped == 7
    assert (np.diff(t.events.time) > 0).all()


def test_exactly_full_ring():
    recs = switches(128)
    mem = image(recs, nslots=64, committed=128)
    (c,) = rings.snapshot(mem.read, CONTROL).chunks
    assert c.first_seq == 64 and np.array_equal(c.slots.reshape(-1, 32), recs[64:128])


def test_record_cut_at_the_start(tmp_path):
    recs = switches(80, with_creates=True)  # 80 one-slot + 20 two-slot records = 120 slots
    assert len(recs) == 120
    ids = recs.view(layout.SLOT_DTYPE)["id"].reshape(-1)
    # choose an end so that the oldest kept slot is a continuation slot
    nslots = 64
    end = next(e for e in range(nslots, 121) if ids[e - nslots] == layout.ID_CONT)
    mem = image(recs, nslots=nslots, committed=end)
    (c,) = rings.snapshot(mem.read, CONTROL).chunks
    assert c.first_seq == end - nslots
    assert c.slots.reshape(-1, 32)[0].view(layout.SLOT_DTYPE)["id"][0] == layout.ID_CONT
    out = tmp_path / "cut.osvt"
    rings.write_osvt(rings.snapshot(mem.read, CONTROL), out, capture="gdb")
    t = osvtrace.open(out)
    assert t.loss[0].partial_slots == 1 and t.loss[0].invalid_slots == 0 and t.loss[0].gap_slots == 0
    assert len(t) == sum(1 for i in ids[end - nslots + 1:end] if i != layout.ID_CONT)
    assert t.seq[0] == end - nslots + 1


def test_record_in_progress_and_overwrite_during_copy():
    """head is ahead of committed (a record being written): those slots are not read; and when
    the writer moves on during the bulk copy, slots it may have reused are dropped."""
    recs = switches(200)
    nslots = 64
    mem = image(recs, nslots=nslots, committed=100, head=102)
    (c,) = rings.snapshot(mem.read, CONTROL).chunks
    assert (c.first_seq, c.nslots) == (102 - nslots, 100 - (102 - nslots))

    mem = image(recs, nslots=nslots, committed=100)
    head_addr = RING0 + layout.RING_FIELDS["head"][0]

    def writer_runs(addr, size):  # the writer reserves 10 more slots while the slots are copied
        if addr >= SLOTS0:
            mem.put_u(head_addr, 110)
    mem.on_read = writer_runs
    (c,) = rings.snapshot(mem.read, CONTROL).chunks
    assert (c.first_seq, c.nslots, c.dropped_during_copy) == (110 - nslots, 100 - (110 - nslots), 10)
    assert np.array_equal(c.slots.reshape(-1, 32), recs[110 - nslots:100])


def test_stream_mode_skips_consumed_slots():
    recs = switches(50)
    mem = image(recs, nslots=64, committed=50, mode=layout.RING_MODE_STREAM, tail=20)
    (c,) = rings.snapshot(mem.read, CONTROL).chunks
    assert (c.first_seq, c.nslots) == (20, 30)
    assert np.array_equal(c.slots.reshape(-1, 32), recs[20:50])
    assert [(a, s) for a, s in mem.reads if a >= SLOTS0] == [(SLOTS0 + 20 * 32, 30 * 32)]


def test_empty_ring():
    mem = image(switches(1), nslots=64, committed=0)
    (c,) = rings.snapshot(mem.read, CONTROL).chunks
    assert c.nslots == 0


def test_enable_flags():
    cat = default_catalog()
    ids = [tp.id for tp in cat.match(["sched_*"])]
    mem = image(switches(1), nslots=64, committed=1, enabled_ids=ids)
    ctl = rings.read_control(mem.read, CONTROL)
    assert np.nonzero(rings.read_enabled(mem.read, ctl))[0].tolist() == sorted(ids)


@pytest.mark.parametrize("damage, message", [
    (lambda m: m.put_u(CONTROL, 0), "not published yet"),
    (lambda m: m.put_u(CONTROL, 0x1234), "no control block"),
    (lambda m: m.put_u(CONTROL + 8, 9, 4), "version 9"),
    (lambda m: m.put_u(RING0, 0), "no ring for CPU 0"),
    (lambda m: m.put_u(RING0 + 16, 63), "power of two"),
    (lambda m: m.put_u(RING0 + 32, 0x7FFFFFFF00), "cannot read the slots of CPU 0 at 0x7fffffff00"),
])
def test_damage_gives_one_clear_line(damage, message):
    mem = image(switches(4), nslots=64, committed=4)
    damage(mem)
    with pytest.raises(rings.RingReadError, match=message) as e:
        rings.snapshot(mem.read, CONTROL)
    assert "\n" not in str(e.value)
