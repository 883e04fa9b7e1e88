"""`osvtrace slice`: the records of one time window of an .osvt trace, written as a smaller,
valid .osvt that every command opens like the original.

Records are copied whole (stack trailers included) with their sequence numbers, so a gap
inside the window stays a gap; the file says where each CPU's part starts (Metadata
start_seq/start_lost), so what lies before the window is not mistaken for loss, and the
writer's drops are counted from the window's start. Times are the original's (same clock
base), thread names include those created before the window, and what the original lost
or had damaged outside the window is summed in Metadata.extra, never silently dropped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.format.osvt import TraceWriter
from osvtrace.format.trace import OsvtTrace

Progress = Callable[[int, int, str], None]


@dataclass
class SliceResult:
    path: str
    events: int
    slots: int
    chunks: int
    since_ns: int
    until_ns: int
    per_cpu: dict[int, int] = field(default_factory=dict)  # records written per CPU

    def summary(self) -> str:
        cpus = ", ".join(f"cpu{c} {n:,}" for c, n in sorted(self.per_cpu.items()))
        return (f"{self.path}: {self.events:,} records ({cpus or 'none'}), {self.since_ns / 1e9:.6f} s to "
                f"{self.until_ns / 1e9:.6f} s, {self.chunks} chunks")


def _runs(seq: np.ndarray, rows: np.ndarray, nslots: np.ndarray, chunk_of: np.ndarray) -> np.ndarray:
    """Start indices of runs of records that follow each other both in the file and in the
    ring's sequence, inside one source chunk: each run becomes one chunk of the slice."""
    if not len(seq):
        return np.zeros(0, np.int64)
    cont = (seq[1:] == seq[:-1] + nslots[:-1]) & (rows[1:] == rows[:-1] + nslots[:-1]) & \
        (chunk_of[1:] == chunk_of[:-1])
    return np.concatenate(([0], np.flatnonzero(~cont) + 1)).astype(np.int64)


def slice_trace(trace: OsvtTrace, out: str | os.PathLike, since: int | None, until: int | None, *,
                progress: Progress = lambda done, total, what: None) -> SliceResult:
    """Write the records of ``trace`` with since <= time < until (ns; None: open) to ``out``."""
    if not isinstance(trace, OsvtTrace):
        raise UsageError(f"{getattr(trace, 'path', 'trace')}: slice writes .osvt from .osvt traces; "
                         f"this is an {trace.facts.kind} trace (export it, or report with --since/--until)")
    ev = trace.events
    lo = 0 if since is None else int(np.searchsorted(ev.time, since, "left"))
    hi = len(ev) if until is None else int(np.searchsorted(ev.time, until, "left"))
    if hi < lo:
        raise UsageError(f"--until ({until} ns) is before --since ({since} ns)")
    meta = type(trace.meta)()
    meta.CopyFrom(trace.meta)
    first_ns, last_ns = trace.span_ns
    since_ns = first_ns if since is None else since
    until_ns = last_ns + 1 if until is None else until
    chunks = sorted(trace.scan.chunks, key=lambda c: c.row)
    starts = np.array([c.row for c in chunks], np.int64)
    firsts = np.array([c.first_seq for c in chunks], np.int64)
    lost_totals = np.array([c.lost_total for c in chunks], np.int64)
    ncpus = trace.ncpus
    idx_all = np.arange(lo, hi, dtype=np.int64)
    cpu_all = ev.cpu[lo:hi]
    start_seq, start_lost, end_seq = [0] * ncpus, [0] * ncpus, [0] * ncpus
    plans: dict[int, tuple[np.ndarray, ...]] = {}

    def seq_of(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(file rows, ring sequence, source chunk) of events idx (only these: trace.seq
        would place every event of a big trace)."""
        rows = ev.row[idx].astype(np.int64)
        k = np.searchsorted(starts, rows, side="right") - 1
        return rows, rows - starts[k] + firsts[k], k

    for c in range(ncpus):
        mine = idx_all[cpu_all == c]
        if len(mine):
            rows, seq, k = seq_of(mine)
            order = np.argsort(seq, kind="stable")  # ring order (time order may be re-sorted)
            mine, rows, seq, k = mine[order], rows[order], seq[order], k[order]
            nslots = trace.record_slots(mine)
            plans[c] = (rows, seq, nslots, k)
            start_seq[c], end_seq[c] = int(seq[0]), int(seq[-1] + nslots[-1])
            # drops known before the chunk holding the window's first record; those during
            # it may be inside the window, so they are counted in, never silently out
            prev = np.flatnonzero((np.array([ch.cpu for ch in chunks]) == c) & (firsts < firsts[k[0]]))
            start_lost[c] = int(lost_totals[prev].max()) if len(prev) else 0
        else:
            # nothing of this CPU in the window: it starts and ends where the window finds it
            before = np.flatnonzero(ev.cpu[:lo] == c)[-1:]
            at = int(seq_of(before)[1][0] + trace.record_slots(before)[0]) if len(before) else 0
            start_seq[c] = end_seq[c] = at
    del meta.start_seq[:], meta.start_lost[:]
    meta.start_seq.extend(start_seq)
    meta.start_lost.extend(start_lost)
    meta.extra["sliced_from"] = trace.path.name
    meta.extra["slice_since_ns"] = str(since_ns)
    meta.extra["slice_until_ns"] = str(until_ns)
    outside = {str(c): {"dropped_total": l.dropped, "gap_slots_total": l.gap_slots,
                        "overwritten_slots": l.overwritten_slots, "invalid_slots_total": l.invalid_slots}
               for c, l in sorted(trace.loss.items()) if l.total_missing or l.overwritten_slots}
    if outside or trace.facts.damage:
        meta.extra["source_loss"] = json.dumps({"cpus": outside, "damage": trace.facts.damage})
    total = sum(len(p[0]) for p in plans.values())
    slots = trace._slots  # the mapped file, as slots: runs are copied straight from it
    done = written_chunks = written_slots = 0
    per_cpu: dict[int, int] = {}
    out = os.fspath(out)
    tmp = out + ".part"
    try:
        with TraceWriter(tmp, meta) as w:
            w.add_threads(trace._thread_names())
            for c, (rows, seq, nslots, k) in sorted(plans.items()):
                run = _runs(seq, rows, nslots, k)
                ends = np.append(run[1:], len(rows))
                for a, b in zip(run.tolist(), ends.tolist()):
                    r0, r1 = int(rows[a]), int(rows[b - 1] + nslots[b - 1])
                    w.write_chunk(c, int(seq[a]), slots[r0:r1], lost_total=int(lost_totals[k[b - 1]]))
                    written_chunks += 1
                    written_slots += r1 - r0
                    done += b - a
                    progress(done, total, f"slicing cpu{c}")
                per_cpu[c] = len(rows)
                w.end_seq[c] = end_seq[c]
            for c in range(ncpus):  # CPUs with nothing in the window still say where they stood
                w.end_seq.setdefault(c, end_seq[c])
                w.lost.setdefault(c, start_lost[c])
            w.close(status=f"slice of {trace.path.name}")
        os.replace(tmp, out)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UsageError(f"{out}: cannot write the slice: {e.strerror or e}") from None
    return SliceResult(out, total, written_slots, written_chunks, since_ns, until_ns, per_cpu)
