"""The OSv shared-RAM poller (capture/osv_shm.py RingPoller) on a hand-made RAM file: an OSv
ring in two physical pieces, written as core/trace.cc's allocate_trace_record writes it,
polled between bursts. No VM: the accounting is checked record by record."""

from __future__ import annotations

import mmap
import struct

import numpy as np
import pytest

import osvtrace
from osvtrace.capture.osv_shm import CpuStream, RingPoller, walk_page_tables
from osvtrace.format import osv_synth as S
from osvtrace.format.osv_records import OsvTracepoint
from osvtrace.format.osv_write import write_dump

PAGE = 4096
SIZE = 16 * PAGE
LAST_AT = 0x100
EXTENTS = [(0, 0x10000, SIZE // 2), (SIZE // 2, 0x40000, SIZE // 2)]  # ring offset, file offset, length
TPS = [OsvTracepoint(0x1000, "tick", "Q", "n=%d"), OsvTracepoint(0x2000, "pkt", "I*", "%d")]
RAW = [(0x1000, "tick", "Q", "n=%d"), (0x2000, "pkt", "I*", "%d")]


class Writer:
    """One CPU's OSv ring in the RAM file (records never cross a trace page; a 0 word pads)."""

    def __init__(self, mm: mmap.mmap):
        self.mm, self.last, self.n = mm, 0, 0
        self.starts: list[tuple[int, int]] = []  # (stream position, record number)

    def put(self, pos: int, b: bytes) -> None:
        a = pos % SIZE
        for lo, fo, n in EXTENTS:
            if lo <= a < lo + n:
                self.mm[fo + a - lo:fo + a - lo + len(b)] = b
                return

    def write(self, count: int, rng: np.random.Generator) -> None:
        for _ in range(count):
            if rng.random() < 0.3:
                rec = S.Rec(0x2000, 0xbeef, "net", self.n, 0, (self.n, bytes(int(rng.integers(0, 200)))))
                b = S.ring_record(TPS[1], rec, 10)
            else:
                b = S.ring_record(TPS[0], S.Rec(0x1000, 0xbeef, "tick", self.n, 0, (self.n,)), 10)
            p, pn = self.last, self.last + len(b)
            if p // PAGE != (pn - 1) // PAGE:
                self.put(p, b"\0" * 8)
                pn = (p + PAGE - 1) // PAGE * PAGE + len(b)
            self.put(pn - len(b), b)
            self.starts.append((pn - len(b), self.n))
            self.last = pn
            self.n += 1
            struct.pack_into("<Q", self.mm, LAST_AT, self.last)


@pytest.fixture
def ram(tmp_path):
    path = tmp_path / "guest.ram"
    path.write_bytes(bytes(0x80000))
    with open(path, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as mm:
        yield path, mm


def _record(path, tmp_path, bursts: list[int], seed: int = 1):
    p, mm = path
    w = Writer(mm)
    s = CpuStream(0, EXTENTS, SIZE, LAST_AT, tmp_path / "cpu0.stream")
    poller = RingPoller(p, [s], PAGE)
    rng = np.random.default_rng(seed)
    for n in bursts:
        w.write(n, rng)
        poller.poll()
    poller.poll(final=True)
    poller.close()
    out = tmp_path / "t.osvt"
    buf = np.fromfile(s.path, np.uint8)
    infos, problems = write_dump(out, RAW, [(0, buf, SIZE, s.last, s.runs, s.lost + s.before)])
    return w, s, out, infos, problems


def test_a_poll_that_keeps_up_loses_nothing_and_keeps_every_record(ram, tmp_path):
    w, s, out, infos, problems = _record(ram, tmp_path, [40] * 200)  # ~3.5 KiB per burst, a 64 KiB ring
    assert w.last > 8 * SIZE and s.lost == 0 and s.before == 0 and not problems
    with osvtrace.open(out) as t:
        assert len(t) == w.n == infos[0].records
        assert np.array_equal(np.sort(t.events.time), np.arange(w.n))  # every record once, times 0..n-1
        assert infos[0].lost == 0 and not any("overwritten" in x for x in t.warnings)
        assert t.facts.capture == "osv shared-RAM capture (osvtrace record)"  # not a snapshot: it counted losses


def test_a_snapshot_of_the_same_ring_says_it_is_a_snapshot(ram, tmp_path):
    w, s, *_ = _record(ram, tmp_path, [40] * 20)
    out = tmp_path / "snap.osvt"
    write_dump(out, RAW, [(0, np.fromfile(s.path, np.uint8), SIZE, s.last)])  # no stream: lost unknown (-1)
    with osvtrace.open(out) as t:
        assert t.facts.capture == "osv gdb snapshot (osvtrace record)"


def test_bytes_overwritten_before_the_poll_are_counted_exactly_and_the_rest_is_kept(ram, tmp_path):
    w, s, out, infos, _ = _record(ram, tmp_path, [40, 3000, 40, 40, 2500, 40])
    assert s.lost > 0
    with osvtrace.open(out) as t:
        kept = set(t.events.time.tolist())
        assert infos[0].lost == s.lost and any(f"{s.lost:,} of the" in x for x in t.warnings)
    # what is missing is exactly the records that began in bytes counted lost: a prefix of each burst
    missing = sorted(set(range(w.n)) - kept)
    assert missing and len(kept) + len(missing) == w.n
    lost_bytes = 0
    gaps = np.split(np.array(missing), np.flatnonzero(np.diff(missing) != 1) + 1)
    pos = dict((n, p) for p, n in w.starts)
    for g in gaps:
        lo, hi = int(g[0]), int(g[-1]) + 1
        end = pos[hi] if hi < w.n else w.last
        lost_bytes += end - pos[lo]
    # the lost stretches start and end on trace pages: the byte count is the records' span, padding included
    assert abs(lost_bytes - s.lost) < PAGE * len(gaps)


def test_page_tables_are_walked_in_the_ram_file(tmp_path):
    ram = bytearray(0x10000)
    # PML4 at 0x1000 -> PDPT at 0x2000 -> PD at 0x3000 -> PT at 0x4000 -> page 0x9000; and a 2 MiB page
    va = (1 << 39) | (2 << 30) | (3 << 21) | (4 << 12) | 0x123
    struct.pack_into("<Q", ram, 0x1000 + 1 * 8, 0x2000 | 3)
    struct.pack_into("<Q", ram, 0x2000 + 2 * 8, 0x3000 | 3)
    struct.pack_into("<Q", ram, 0x3000 + 3 * 8, 0x4000 | 3)
    struct.pack_into("<Q", ram, 0x4000 + 4 * 8, 0x9000 | 3)
    assert walk_page_tables(bytes(ram), 0x1000, va) == 0x9123
    struct.pack_into("<Q", ram, 0x3000 + 3 * 8, 0x600000 | 0x83)  # PS: a 2 MiB page
    assert walk_page_tables(bytes(ram), 0x1000, va) == 0x600000 + (va & 0x1FFFFF)
