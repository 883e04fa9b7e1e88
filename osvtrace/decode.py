"""Vectorised decoding: chunks of raw slots -> time-ordered event columns.

No Python object per event: each CPU's chunks become a handful of numpy
operations (done in a thread per CPU, numpy releases the GIL), then one stable
argsort merges the per-CPU streams, which are already sorted, by time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from osvtrace import hugemem, layout
from osvtrace.osvt import Chunk
from osvtrace.schema import Catalog


@dataclass
class CpuLoss:
    """Everything known to be missing from one CPU's stream."""

    cpu: int
    dropped: int = 0  # records the writer dropped because the ring was full
    gap_slots: int = 0  # slots missing between chunks (damaged chunk, drain gap)
    overwritten_slots: int = 0  # slots overwritten before the first captured one (flight recorder)
    partial_slots: int = 0  # continuation slots whose record header was already overwritten
    invalid_records: int = 0  # header slots that do not match the schema (corruption)
    duplicate_slots: int = 0  # slots captured twice (overlapping chunks), dropped
    reordered: int = 0  # records whose timestamps went backwards (re-sorted)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (seq, missing slots)

    @property
    def total_missing(self) -> int:
        """Records or slots the trace does not contain (dropped + gaps + invalid)."""
        return self.dropped + self.gap_slots + self.invalid_records


@dataclass
class CpuStream:
    cpu: int
    rows: np.ndarray  # file slot index of each record's header slot
    time: np.ndarray  # int64 ns since time zero
    loss: CpuLoss


def _cpu_parts(chunks: list[Chunk], loss: CpuLoss, end_seq: int = 0) -> list[tuple[int, int]]:
    """One CPU's chunks in sequence order as (file row, slot count) parts, overlaps removed;
    gaps in the sequence are counted in ``loss``."""
    parts: list[tuple[int, int]] = []
    expect = None
    for c in sorted(chunks, key=lambda c: c.first_seq):
        first, count, row = c.first_seq, c.nslots, c.row
        if expect is not None and first < expect:  # overlap with what we already have
            skip = min(count, expect - first)
            loss.duplicate_slots += skip
            first, count, row = first + skip, count - skip, row + skip
            if count == 0:
                continue
        if expect is None:
            loss.overwritten_slots = first
        elif first > expect:
            loss.gap_slots += first - expect
            loss.gaps.append((expect, first - expect))
        parts.append((row, count))
        expect = first + count
    expect = expect or 0
    if end_seq > expect:  # the writer wrote more than arrived intact: a lost tail
        loss.gap_slots += end_seq - expect
        loss.gaps.append((expect, end_seq - expect))
    return parts


def decode_cpu(slots: np.ndarray, chunks: list[Chunk], cpu: int, cat: Catalog, tsc_base: int,
               ns_per_tick: float, end_seq: int = 0) -> CpuStream:
    """Decode one CPU's chunks into header rows and times (ns), validating record framing.

    Works chunk by chunk on cache-sized temporaries, writing straight into the outputs.
    NOTE: a chunk holds whole records (writers cut only at record boundaries); only the
    first chunk of a flight-recorder snapshot may begin inside an overwritten record."""
    loss = CpuLoss(cpu)
    parts = _cpu_parts(chunks, loss, end_seq)
    n = sum(p[1] for p in parts)
    time = hugemem.empty(n, np.int64)
    rows = hugemem.empty(n, np.int64)
    nslots_tab = cat.nslots_table()
    single = nslots_tab == 1  # ids of valid one-slot records
    ramp = np.arange(max((p[1] for p in parts), default=0), dtype=np.int64)
    ordered = True
    last = None
    pos = 0
    for row, count in parts:
        sl = slice(row, row + count)
        ids = slots["id"][sl]
        nsl = slots["nslots"][sl]
        if single[ids].all() and (nsl == 1).all():
            t = slots["tsc"][sl].view(np.int64)
            take = count
            np.add(ramp[:count], row, out=rows[pos:pos + count])
        else:
            keep = _validate_chunk(slots, row, ids, nsl, nslots_tab, loss)
            t = slots["tsc"][sl].view(np.int64)[keep]
            take = len(keep)
            np.add(keep, row, out=rows[pos:pos + take])
        dst = time[pos:pos + take]
        if ns_per_tick == 1.0:
            np.subtract(t, tsc_base, out=dst)
        else:
            np.multiply(t - tsc_base, ns_per_tick, out=dst, casting="unsafe")
        if take and ordered:
            ordered = bool((dst[1:] >= dst[:-1]).all()) and (last is None or dst[0] >= last)
            last = dst[-1]
        pos += take
    rows = rows[:pos]
    time = time[:pos]
    if not ordered:
        # NOTE: a ring's timestamps never go backwards; if they do (a clock or writer
        # bug), order this CPU by time so the merge stays correct, and say so.
        order = np.argsort(time, kind="stable")
        loss.reordered = int((order != np.arange(len(order))).sum())
        rows = rows[order]
        time = time[order]
    return CpuStream(cpu, rows, time, loss)


def _validate_chunk(slots: np.ndarray, row: int, ids: np.ndarray, nsl: np.ndarray, nslots_tab: np.ndarray,
                    loss: CpuLoss) -> np.ndarray:
    """Positions (in the chunk) of header slots that start a complete, well-formed record;
    counts what is skipped as partial (cut by the chunk edge) or invalid (corrupt)."""
    count = len(ids)
    ids = np.ascontiguousarray(ids)
    n = nsl.astype(np.int64)
    is_cont = ids == layout.ID_CONT
    hdr = ~is_cont & (ids != layout.ID_EMPTY)
    pos = np.arange(count, dtype=np.int64)
    framed = hdr & (nslots_tab[ids] == n) & (n > 0)
    valid = framed & (pos + n <= count)
    multi = np.nonzero(valid & (n > 1))[0]
    if len(multi):
        for k in range(1, int(n[multi].max())):
            sel = multi[n[multi] > k]
            r = sel + k
            bad = (ids[r] != layout.ID_CONT) | (nsl[r] != k)  # a continuation keeps its index in `nslots`
            valid[sel[bad]] = False
    covered = np.zeros(count + 1, np.int64)
    vi = np.nonzero(valid)[0]
    np.add.at(covered, vi + 1, 1)
    np.add.at(covered, vi + n[vi], -1)
    inside = np.cumsum(covered)[:count] > 0  # slots belonging to a valid record
    orphan = is_cont & ~inside
    cut = framed & (pos + n > count)
    leading = _leading(orphan)
    loss.partial_slots += leading + int(cut.sum())
    loss.invalid_records += int((hdr & ~valid & ~cut).sum()) + int(orphan.sum()) - leading
    loss.invalid_records += int(((ids == layout.ID_EMPTY) & ~inside).sum())
    return vi


def _leading(mask: np.ndarray) -> int:
    """Length of the leading run of True in mask."""
    nz = np.nonzero(~mask)[0]
    return int(nz[0]) if len(nz) else len(mask)


@dataclass
class Decoded:
    rows: np.ndarray  # file slot row of each event's header slot
    time: np.ndarray  # int64 ns
    cpu: np.ndarray  # uint16
    loss: dict[int, CpuLoss]


MERGE_BLOCK = 1 << 16


def merge(streams: list[CpuStream], workers: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-CPU streams sorted by time into (time, cpu, rows); ties keep CPU order.

    Each block of a CPU's records finds its place by counting, with searchsorted, the
    other CPUs' records before it; blocks scatter into disjoint output positions, so
    they run in parallel with no sort and no big temporaries."""
    total = sum(len(s.time) for s in streams)
    out_time = hugemem.empty(total, np.int64)
    out_cpu = hugemem.empty(total, np.uint16)
    out_rows = hugemem.empty(total, np.int64)

    def block(job: tuple[int, int, int]) -> None:
        ci, b0, b1 = job
        s = streams[ci]
        tb = s.time[b0:b1]
        pos = np.arange(b0, b1, dtype=np.int64)
        for di, d in enumerate(streams):
            if di != ci and len(d.time):
                pos += np.searchsorted(d.time, tb, side="right" if di < ci else "left")
        out_time[pos] = tb
        out_cpu[pos] = s.cpu
        out_rows[pos] = s.rows[b0:b1]

    jobs = [(ci, b0, min(b0 + MERGE_BLOCK, len(s.time)))
            for ci, s in enumerate(streams) for b0 in range(0, len(s.time), MERGE_BLOCK)]
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(block, jobs))
    else:
        for j in jobs:
            block(j)
    return out_time, out_cpu, out_rows


def decode(slots: np.ndarray, chunks: list[Chunk], cat: Catalog, *, tsc_hz: int,
           tsc_boot: int, tsc_offsets: list[int], end_seq: list[int] | None = None,
           workers: int = 2) -> Decoded:
    """Decode all chunks and merge the CPUs by time (stable: ties keep CPU order).

    ``end_seq`` (from the trailer, per CPU) exposes chunks lost at the end of a stream."""
    end_seq = end_seq or []
    by_cpu: dict[int, list[Chunk]] = {cpu: [] for cpu, e in enumerate(end_seq) if e}
    for c in chunks:
        by_cpu.setdefault(c.cpu, []).append(c)
    ns_per_tick = 1.0 if tsc_hz in (0, 1_000_000_000) else 1e9 / tsc_hz

    def one(cpu: int) -> CpuStream:
        off = tsc_offsets[cpu] if cpu < len(tsc_offsets) else 0
        end = end_seq[cpu] if cpu < len(end_seq) else 0
        return decode_cpu(slots, by_cpu[cpu], cpu, cat, tsc_boot + off, ns_per_tick, end)

    cpus = sorted(by_cpu)
    if workers > 1 and len(cpus) > 1:
        with ThreadPoolExecutor(min(workers, len(cpus))) as ex:
            streams = list(ex.map(one, cpus))
    else:
        streams = [one(c) for c in cpus]
    loss = {s.cpu: s.loss for s in streams}
    for c in chunks:
        loss[c.cpu].dropped = max(loss[c.cpu].dropped, c.lost_total)
    if not streams:
        return Decoded(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint16), loss)
    if len(streams) == 1:
        s = streams[0]
        return Decoded(s.rows, s.time, np.full(len(s.rows), s.cpu, np.uint16), loss)
    time, cpu, rows = merge(streams, workers)
    return Decoded(rows, time, cpu, loss)
