"""Vectorised decoding: chunks of raw slots -> time-ordered event columns.

No Python object per event. Two passes over numpy columns:

1. Per CPU (a thread each), chunk by chunk (compiled: osvtrace/format/_decode_loops.pyx):
   check the record framing, convert timestamps to ns and copy the header fields
   into one CPU-major staging table (each CPU owns a region).
2. Merge: the CPUs' streams are each sorted by time, so time order is a k-way
   merge of sorted runs (compiled: numpy has none), done in independent time
   segments in parallel, each writing all its output columns in one pass.

Big arrays come from hugemem (huge pages: see its docstring for why).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog
from osvtrace.format import hugemem
from osvtrace.format._decode_loops import copy_chunk, merge_runs
from osvtrace.format.osvt import Chunk


@dataclass
class CpuLoss:
    """Everything known to be missing from one CPU's stream."""

    cpu: int
    dropped: int = 0  # records the writer dropped because the ring was full
    gap_slots: int = 0  # slots missing between chunks (damaged chunk, drain gap)
    overwritten_slots: int = 0  # slots overwritten before the first captured one (flight recorder)
    partial_slots: int = 0  # continuation slots whose record header was already overwritten
    invalid_slots: int = 0  # slots that break the record framing (corruption)
    duplicate_slots: int = 0  # slots captured twice (overlapping chunks), dropped
    reordered: int = 0  # records whose timestamps went backwards (re-sorted)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (seq, missing slots)

    @property
    def total_missing(self) -> int:
        """Records or slots the trace does not contain (dropped + gaps + invalid)."""
        return self.dropped + self.gap_slots + self.invalid_slots


def _cpu_parts(chunks: list[Chunk], loss: CpuLoss, end_seq: int = 0, streamed: bool = False,
               start_seq: int | None = None) -> list[tuple[int, int]]:
    """One CPU's chunks in sequence order as (file row, slot count) parts, overlaps removed;
    gaps in the sequence are counted in ``loss``. A streamed capture starts at slot 0, a
    slice at its ``start_seq``, so what is missing before its first chunk is a gap too (a
    snapshot's is overwritten)."""
    parts: list[tuple[int, int]] = []
    expect = start_seq if start_seq is not None else (0 if streamed and chunks else None)
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


@dataclass
class Staging:
    """Per-CPU decoded records, CPU-major: CPU k's records are at [start[k], start[k] + count[k])."""

    time: np.ndarray  # int64 ns
    rows: np.ndarray  # file slot index of the header slot
    tid: np.ndarray  # uint32
    tp: np.ndarray  # uint16
    start: dict[int, int]
    count: dict[int, int]


def decode_cpu(st: Staging, slots: np.ndarray, chunks: list[Chunk], cpu: int, cat: Catalog, tsc_base: int,
               ns_per_tick: float, loss: CpuLoss, end_seq: int = 0, streamed: bool = False,
               start_seq: int | None = None) -> None:
    """Decode one CPU's chunks into its region of the staging table, validating record framing.

    NOTE: a chunk holds whole records (writers cut only at record boundaries); only the
    first chunk of a flight-recorder snapshot may begin inside an overwritten record."""
    parts = _cpu_parts(chunks, loss, end_seq, streamed, start_seq)
    base = st.start[cpu]
    nslots_of = cat.nslots_table()
    stack_of = cat.stack_table()
    words = slots.view(np.uint64).reshape(-1, layout.SLOT_SIZE // 8)
    ordered = True
    last = None
    pos = base
    for row, count in parts:
        take, in_order, partial, invalid = copy_chunk(words, row, count, nslots_of, stack_of, tsc_base, ns_per_tick,
                                                      st.time, st.tid, st.tp, st.rows, pos)
        loss.partial_slots += partial
        loss.invalid_slots += invalid
        if take and ordered:
            ordered = in_order and (last is None or st.time[pos] >= last)
            last = st.time[pos + take - 1]
        pos += take
    st.count[cpu] = pos - base
    if not ordered:
        # NOTE: a ring's timestamps never go backwards; if they do (a clock or writer
        # bug), order this CPU by time so the merge stays correct, and say so.
        region = slice(base, pos)
        order = np.argsort(st.time[region], kind="stable")
        loss.reordered = int((order != np.arange(len(order))).sum())
        for col in (st.time, st.rows, st.tid, st.tp):
            col[region] = col[region][order]


@dataclass
class Decoded:
    time: np.ndarray  # int64 ns
    cpu: np.ndarray  # uint16
    tid: np.ndarray  # uint32
    tp: np.ndarray  # uint16
    rows: np.ndarray  # file slot row of each event's header slot
    loss: dict[int, CpuLoss]


# Segments only share the work out among threads: the compiled merge needs no
# temporaries, so a few per worker balance the load (CPUs' rates differ over time).
SEGMENTS_PER_WORKER = 4


def merge(st: Staging, workers: int = 2) -> tuple[np.ndarray, ...]:
    """(time, cpu, tid, tp, rows) of all records in time order (ties keep CPU order).

    The time range is cut into segments at pivots; each segment's slices of the CPUs'
    runs are merged by the compiled k-way merge (osvtrace/format/_decode_loops.pyx), which writes every
    output column in one pass without the GIL, so segments run in parallel threads."""
    cpus = sorted(c for c in st.count if st.count[c])
    total = sum(st.count[c] for c in cpus)
    out_time, out_cpu, out_tid, out_tp, out_rows = hugemem.columns(
        total, (np.int64, np.uint16, st.tid.dtype, st.tp.dtype, st.rows.dtype))
    if not cpus:
        return out_time, out_cpu, out_tid, out_tp, out_rows
    regions = {c: st.time[st.start[c]:st.start[c] + st.count[c]] for c in cpus}
    lo = min(int(r[0]) for r in regions.values())
    hi = max(int(r[-1]) for r in regions.values())
    nseg = max(1, min(workers * SEGMENTS_PER_WORKER, total // 65536 or 1))
    pivots = [lo + (hi - lo) * k // nseg for k in range(1, nseg)]
    # cuts[k, i]: staging index where CPU cpus[i]'s part of segment k starts
    cuts = np.array([[st.start[c]] + (st.start[c] + np.searchsorted(regions[c], pivots, "left")).tolist()
                     + [st.start[c] + st.count[c]] for c in cpus], np.int64).T.copy()
    bases = np.concatenate([[0], np.cumsum((cuts[1:] - cuts[:-1]).sum(axis=1))]).tolist()
    cpu_ids = np.array(cpus, np.uint16)

    def segment(k: int) -> None:
        span = slice(bases[k], bases[k + 1])
        merge_runs(st.time, st.tid, st.tp, st.rows, cuts[k], cuts[k + 1], cpu_ids,
                   out_time[span], out_cpu[span], out_tid[span], out_tp[span], out_rows[span])

    if workers > 1 and nseg > 1:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(segment, range(nseg)))
    else:
        for k in range(nseg):
            segment(k)
    return out_time, out_cpu, out_tid, out_tp, out_rows


def decode(slots: np.ndarray, chunks: list[Chunk], cat: Catalog, *, tsc_hz: int,
           tsc_boot: int, tsc_offsets: list[int], end_seq: list[int] | None = None,
           workers: int = 2, streamed: bool = False, start_seq: list[int] | None = None,
           start_lost: list[int] | None = None) -> Decoded:
    """Decode all chunks and merge the CPUs by time (stable: ties keep CPU order).

    ``end_seq`` (from the trailer, per CPU) exposes chunks lost at the end of a stream;
    ``streamed`` (each CPU's stream starts at slot 0) those lost at its start. A slice of a
    longer trace gives per CPU the sequence it starts at and the drop count there."""
    start_seq, start_lost = start_seq or [], start_lost or []
    end_seq = end_seq or []
    by_cpu: dict[int, list[Chunk]] = {cpu: [] for cpu, e in enumerate(end_seq) if e}
    for c in chunks:
        by_cpu.setdefault(c.cpu, []).append(c)
    ns_per_tick = 1.0 if tsc_hz in (0, 1_000_000_000) else 1e9 / tsc_hz
    cpus = sorted(by_cpu)
    capacity = {c: sum(ch.nslots for ch in by_cpu[c]) for c in cpus}
    starts = dict(zip(cpus, np.cumsum([0] + [capacity[c] for c in cpus]).tolist()))
    total = sum(capacity.values())
    row_type = np.int32 if len(slots) < 2**31 else np.int64
    st = Staging(*hugemem.columns(total, (np.int64, row_type, np.uint32, np.uint16)), starts, {})
    loss = {c: CpuLoss(c) for c in cpus}

    def one(cpu: int) -> None:
        off = tsc_offsets[cpu] if cpu < len(tsc_offsets) else 0
        end = end_seq[cpu] if cpu < len(end_seq) else 0
        # the TSC arithmetic is modulo 2^64: a base beyond int64 (a damaged or odd clock) is
        # the same base as its two's complement, which the compiled loop takes
        base = (tsc_boot + off + 2**63) % 2**64 - 2**63
        start = start_seq[cpu] if cpu < len(start_seq) else None
        decode_cpu(st, slots, by_cpu[cpu], cpu, cat, base, ns_per_tick, loss[cpu], end, streamed, start)

    if workers > 1 and len(cpus) > 1:
        with ThreadPoolExecutor(min(workers, len(cpus))) as ex:
            list(ex.map(one, cpus))
    else:
        for c in cpus:
            one(c)
    for c in chunks:
        before = start_lost[c.cpu] if c.cpu < len(start_lost) else 0
        loss[c.cpu].dropped = max(loss[c.cpu].dropped, c.lost_total - before)
    time, cpu, tid, tp, rows = merge(st, workers)
    return Decoded(time, cpu, tid, tp, rows, loss)
