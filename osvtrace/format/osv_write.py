"""An OSVT dump (OSv's own trace dump format, core/trace.cc create_trace_dump) written from
raw per-CPU trace buffers: what `osvtrace record --kernel osv` saves, so that both
osvtrace and OSv's scripts/trace.py open the capture.

Input: each CPU's whole trace_buf (its `_size` bytes, as memsaved from the guest) with its
`_last`, and the tracepoint dictionary ([key, name, sig, format] per tracepoint_base, the
sig as OSv keeps it, e.g. "50p" for a pascal string). Output, as create_trace_dump() does:
OSVT { TRCD (the dictionary), MODS (empty), one TRCS per CPU: that ring's records oldest
first with the page-end padding removed }. Records are framed by the same compiled walk
that reads them (osv_records.walk), and copied one page's run at a time, never one by one.

One more chunk, RING (trace.py skips chunks it does not know, as OSv's reader does): per
CPU its buffer size, `_last` (bytes ever written), the bytes its TRCS kept, its records, and
the bytes written that the capture lacks (overwritten before a snapshot, or before a
continuous capture's poll copied them), so a report can say that a CPU's ring wrapped and
how much of it was lost.

The same writer serves a continuous capture (capture/osv_shm.py): there a CPU's "buffer"
is the stream of bytes copied from its ring, given as runs [lo, hi) that each start on a
trace page, with a gap between runs where bytes were lost.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from osvtrace.format import osv_records as R

RING_TAG = "RING"


@dataclass
class RingInfo:
    """What a RING chunk says of one CPU's buffer at the capture."""

    cpu: int
    size: int  # trace_buf::_size
    last: int  # trace_buf::_last: bytes ever reserved in it
    kept: int  # bytes of records its TRCS chunk holds
    records: int
    lost: int = -1  # bytes written that the capture lacks; -1: those overwritten by later laps

    @property
    def wrapped(self) -> bool:
        return self.last > self.size

    @property
    def overwritten(self) -> int:
        """Bytes written to the ring that the capture does not have (overwritten by later laps
        before the snapshot, or before a continuous capture copied them)."""
        return self.lost if self.lost >= 0 else max(0, self.last - self.size)


class _Out:
    """Little-endian fields with OSv's trace_out alignment rules, into a file."""

    def __init__(self, fh):
        self.fh = fh
        self.pos = 0

    def raw(self, b: bytes | memoryview) -> None:
        self.fh.write(b)
        self.pos += len(b)

    def align(self, a: int) -> None:
        pad = -self.pos % a
        if pad:
            self.raw(b"\0" * pad)

    def put(self, fmt: str, v: int) -> None:
        self.align(struct.calcsize(fmt))
        self.raw(struct.pack("<" + fmt, v))

    def string(self, s: str | bytes) -> None:
        b = s.encode() if isinstance(s, str) else s
        self.put("H", len(b))
        self.raw(b)

    def chunk(self, tag: str) -> int:
        self.align(8)
        self.raw(tag.encode()[::-1])
        self.align(8)
        self.raw(b"\0" * 8)
        return self.pos

    def end(self, start: int) -> None:
        here = self.fh.tell()
        self.fh.seek(start - 8)
        self.fh.write(struct.pack("<Q", self.pos - start))
        self.fh.seek(here)


def _payload_size(sig: str, buf: np.ndarray, at: int) -> int:
    """Bytes of a payload with a blob (its size is per record), packed as OSv packs it."""
    off = 0
    for c in sig:
        code = R.SIG[c][0]
        if code == 255:
            off = (off + 1) & ~1
            off += 2 + int(buf[at + off]) + (int(buf[at + off + 1]) << 8)
        elif code == R.PSTR:
            off += R.PSTR
        else:
            off = (off + code - 1) // code * code + code
    return off


def ring_segments(buf: np.ndarray, size: int, last: int, d: R.Dictionary, *, page: int, bt_len: int,
                  runs: list[tuple[int, int]] | None = None) -> tuple[list[tuple[int, int]], int, str]:
    """One CPU's buffer as byte ranges [lo, hi) of whole records, oldest first, without the
    page-end padding (what a TRCS chunk holds); the record count; and why the walk stopped
    early ("" when it read everything up to the write position). `runs`: the byte ranges
    to walk, when `buf` is not the ring itself (a continuous capture's copied stream)."""
    if runs is None:
        if not size or not last:
            return [], 0, ""
        runs = [(0, last)] if last < size else R.ring_runs(size, last, page)
    rec = R.walk(buf, runs, d, tracefile=False, page=page, bt_len=bt_len)
    problem = ""
    for _run, stop, status, detail in rec.problems:
        problem = f"offset {stop}: {R.STATUS.get(status, status)} {detail}".strip()
    n = len(rec.off)
    if not n:
        return [], 0, problem
    off = rec.off
    pg = off // page
    # a new segment where the page changes (padding skipped) or the walk jumped (a run boundary)
    starts = np.flatnonzero(np.diff(pg) != 0) + 1 if n > 1 else np.zeros(0, np.int64)
    starts = np.concatenate(([0], starts))
    ends = np.concatenate((starts[1:], [n])) - 1  # the last record of each segment
    out = []
    fixed = d.fixed
    for a, z in zip(starts.tolist(), ends.tolist()):
        o = int(off[z])
        pay = o + R.HEADER_RING + 8 * int(rec.nbt[z])
        tp = int(rec.tp[z])
        psz = int(fixed[tp])
        if psz < 0:
            psz = _payload_size(d.by_id(tp).sig, buf, pay)
        out.append((int(off[a]), (pay + psz + 7) & ~7))
    return out, n, problem


def write_dump(path: str | os.PathLike, tracepoints: list[tuple[int, str, str, str]],
               rings: list[tuple], *, bt_len: int = 10, page: int = 4096) -> tuple[list[RingInfo], list[str]]:
    """Write an OSVT dump of `rings` to `path`: per CPU (cpu, buffer bytes or None, _size,
    _last), and for a continuous capture also (..., runs, lost bytes). Returns what each
    CPU's TRCS kept and the problems met (a ring whose walk stopped early: records up to
    there are kept)."""
    d = R.Dictionary([R.OsvTracepoint(int(k), n, R.parse_sig(s, "the guest's tracepoint list", n), f)
                      for k, n, s, f in tracepoints])
    infos, problems, segs = [], [], []
    for cpu, buf, size, last, *stream in rings:
        runs, lost = (stream[0], stream[1]) if stream else (None, -1)
        if buf is None:
            segs.append([])
            infos.append(RingInfo(cpu, size, last, 0, 0, lost))
            continue
        sg, n, problem = ring_segments(buf, size, last, d, page=page, bt_len=bt_len, runs=runs)
        if problem:
            problems.append(f"cpu{cpu}: the ring's walk stopped at {problem}; its records up to there are kept")
        segs.append(sg)
        infos.append(RingInfo(cpu, size, last, sum(b - a for a, b in sg), n, lost))
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as fh:
        o = _Out(fh)
        top = o.chunk("OSVT")
        o.put("I", 1)  # endian check
        o.put("I", 1)  # format version 0.1, as OSv writes it
        c = o.chunk("TRCD")
        o.put("I", bt_len)
        o.put("I", len(tracepoints))
        for key, name, sig, fmt in tracepoints:
            o.put("Q", int(key))
            o.string(name)  # id
            o.string(name)
            o.string("OSv")
            o.string(fmt)
            o.put("I", len(sig))
            for n, ch in enumerate(sig.encode()):
                o.string(str(n))
                o.raw(bytes([ch]))
        o.end(c)
        c = o.chunk("MODS")
        o.put("I", 0)
        o.end(c)
        c = o.chunk(RING_TAG)
        o.put("I", len(infos))
        o.put("I", 0)
        for i in infos:  # 48 bytes each, from offset 8
            o.put("I", i.cpu)
            o.put("I", 0)
            o.put("Q", i.size)
            o.put("Q", i.last)
            o.put("Q", i.kept)
            o.put("Q", i.records)
            o.put("q", i.lost)
        o.end(c)
        for (cpu, buf, *_rest), sg in zip(rings, segs):
            c = o.chunk("TRCS")
            o.align(8)
            if buf is not None:
                mv = memoryview(buf)
                for a, b in sg:
                    o.raw(mv[a:b])
            o.end(c)
        o.end(top)
    os.replace(tmp, path)
    return infos, problems


def read_ring_chunk(body: bytes) -> list[RingInfo]:
    """The RING chunk's per-CPU entries (see write_dump)."""
    (n,) = struct.unpack_from("<I", body, 0)
    out, pos = [], 8
    step = (len(body) - 8) // n if n else 48
    for _ in range(n):
        cpu, = struct.unpack_from("<I", body, pos)
        size, last, kept, records = struct.unpack_from("<QQQQ", body, pos + 8)
        lost = struct.unpack_from("<q", body, pos + 40)[0] if step >= 48 else -1
        out.append(RingInfo(cpu, size, last, kept, records, lost))
        pos += step
    return out
