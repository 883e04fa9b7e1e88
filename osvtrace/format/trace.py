"""Opening a trace: ``osvtrace.open(path)`` picks the reader by the file's content.

- our .osvt (``OsvtTrace``, here): columnar events, arguments read from the mapped file on
  demand, per tracepoint, with one vectorised gather each;
- real OSv's trace files, the OSVT REST dump and the gdb tracefile
  (osvtrace.format.osv_dump.OsvTrace).

Both implement osvtrace.format.base.Trace, which is what everything downstream uses.
"""

from __future__ import annotations

import builtins
import json
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, Field, Tracepoint, default_catalog
from osvtrace.format import osv_dump
from osvtrace.format.args import SlotArgs
from osvtrace.format.base import Events, FileFacts, Trace
from osvtrace.format.decode import CpuLoss, decode
from osvtrace.format.osvt import MAGIC, SectionScan, map_file, scan, schema_from_proto

__all__ = ["Events", "FileFacts", "OsvtTrace", "Trace", "open"]

# Captures whose per-CPU streams start at slot 0 (a snapshot of a ring starts where it was)
STREAMED_CAPTURES = ("virtio",)


# Smaller files are read by one thread: measured here, a 1 M-event file (32 MiB) decodes in
# ~22 ms with one and no faster with two (thread start-up, page faults taking the same lock);
# from ~4 M events on, two threads win (10 M: ~125 ms against ~200 ms).
PARALLEL_MIN_BYTES = 128 << 20


class OsvtTrace(Trace):
    """An .osvt trace file, decoded. Use :func:`open`."""

    def __init__(self, path: str | os.PathLike, *, workers: int = 2, verify: bool = True):
        self.path = Path(path)
        self._mm = map_file(self.path, populate=True)  # the scan and the decode read every page
        if len(self._mm) < PARALLEL_MIN_BYTES:
            workers = 1
        self.scan: SectionScan = scan(self._mm, str(self.path), verify=verify, workers=workers)
        meta = self.scan.meta
        self.meta = meta
        self._catalog: Catalog = schema_from_proto(meta.schema, str(self.path)) if meta.schema.tracepoints \
            else default_catalog()
        n = len(self._mm) // layout.SLOT_SIZE
        self._slots = np.frombuffer(self._mm, layout.SLOT_DTYPE, count=n) if n else np.empty(0, layout.SLOT_DTYPE)
        self._args = SlotArgs(self._slots)
        d = decode(self._slots, self.scan.chunks, self._catalog, tsc_hz=meta.tsc_hz or 1_000_000_000,
                   tsc_boot=meta.tsc_boot, tsc_offsets=list(meta.tsc_offset),
                   end_seq=list(self.scan.trailer.end_seq) if self.scan.trailer else None, workers=workers,
                   streamed=meta.capture in STREAMED_CAPTURES, start_seq=list(meta.start_seq) or None,
                   start_lost=list(meta.start_lost) or None)
        self.loss: dict[int, CpuLoss] = d.loss
        self.events = Events(d.time, d.cpu, d.tid, d.tp, d.rows)

    # ------------------------------------------------------------ basic facts

    @cached_property
    def schema_warnings(self) -> list[str]:
        """Where the file's schema and this tree's disagree (compared on first use: decoding
        needs only the file's own; the comparison reads this tree's tracepoints/*.toml)."""
        return _schema_drift(self._catalog)

    @property
    def catalog(self) -> Catalog:
        """The file's tracepoints, less those whose arguments the analyses would not find."""
        _ = self.schema_warnings  # the comparison hides those first
        return self._catalog

    @property
    def warnings(self) -> list[str]:
        return self.scan.warnings + self.schema_warnings

    @cached_property
    def facts(self) -> FileFacts:
        m, sc = self.meta, self.scan
        return FileFacts("osvt", size=sc.size, capture=m.capture, cmdline=m.cmdline, build_id=m.build_id,
                         tsc_hz=m.tsc_hz, wall_clock_ns=int(m.wall_clock_ns), chunks=len(sc.chunks),
                         complete=sc.trailer is not None, status=sc.trailer.status if sc.trailer else "",
                         damaged_chunks=sc.damaged_chunks, truncated=sc.truncated, damage=list(sc.warnings),
                         origin=_slice_origin(m))

    @property
    def ncpus(self) -> int:
        return max(self.meta.ncpus, max(self.loss, default=-1) + 1)

    @cached_property
    def seq(self) -> np.ndarray:
        """Per-CPU absolute slot index of each record (consecutive records of a CPU differ by
        their slot count; anything more is a gap, reported in ``loss``)."""
        chunks = sorted(self.scan.chunks, key=lambda c: c.row)
        if not chunks:
            return np.empty(0, np.int64)
        starts = np.array([c.row for c in chunks], np.int64)
        firsts = np.array([c.first_seq for c in chunks], np.int64)
        k = np.searchsorted(starts, self.events.row, side="right") - 1
        return self.events.row - starts[k] + firsts[k]

    def _thread_names(self) -> dict[int, str]:
        """From the file's metadata, then thread_create records."""
        names = dict(self.scan.threads)
        tp = self.catalog.by_name.get("thread_create")
        if tp is not None:
            idx = np.nonzero(self.events.tp == tp.id)[0]
            if len(idx):
                a = self.args_at(tp, idx)
                for tid, name in zip(a["tid"].tolist(), a["name"].tolist()):
                    names.setdefault(int(tid), name.decode("utf-8", "replace"))
        return names

    # ------------------------------------------------------------ arguments

    def field_values(self, f: Field, rows: np.ndarray) -> np.ndarray:
        """Values of one argument for records starting at the given file rows."""
        return self._args.values(f, rows)

    # ------------------------------------------------------------ stacks

    def record_slots(self, idx: np.ndarray) -> np.ndarray:
        """Slots each of events ``idx`` occupies (its header's count: the schema's slots, plus
        its stack trailer's when it carries one); consecutive records of a CPU differ by it."""
        return self._args.column(2, np.dtype("u1"))[self.events.row[np.asarray(idx)]].astype(np.int64)

    def _trailers(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(has a stack trailer, file row of its first slot, frames stored) of events ``idx``."""
        rows = self.events.row[np.asarray(idx)]
        if not len(rows):
            z = np.zeros(0, np.int64)
            return z.astype(bool), z, z
        u1 = np.dtype("u1")
        has = (self._args.column(3, u1)[rows] & layout.FLAG_STACK) != 0
        fixed = self._catalog.nslots_table()[self.events.tp[np.asarray(idx)]].astype(np.int64)
        first = np.where(has, rows + fixed, 0)  # 0: a row that surely exists; the mask hides it
        depth = np.where(has, self._args.column(layout.STACK_DEPTH_OFFSET, u1)[first], 0).astype(np.int64)
        # the decoder framed the record, so its trailer slots are there; a damaged depth byte
        # must not make a frame come from beyond them
        room = (self.record_slots(idx) - fixed) * layout.STACK_FRAMES_PER_SLOT
        return has, first, np.minimum(depth, np.where(has, room, 0))

    def backtraces(self, idx: np.ndarray) -> np.ndarray:
        """Frames of each event's stack trailer (see Trace.backtraces): one strided gather per
        frame position over all records, never a loop over records."""
        has, first, depth = self._trailers(idx)
        width = int(depth.max()) if len(depth) else 0
        out = np.zeros((len(depth), width), np.uint64)
        for k in range(width):
            m = depth > k
            slot, pos = divmod(k, layout.STACK_FRAMES_PER_SLOT)
            col = self._args.column(layout.STACK_FRAME_OFFSET + 8 * pos, np.dtype("<u8"))
            out[m, k] = col[first[m] + slot]
        return out

    def backtrace_ends(self, idx: np.ndarray) -> np.ndarray:
        has, first, _ = self._trailers(idx)
        end = self._args.column(layout.STACK_END_OFFSET, np.dtype("u1"))[first] if len(first) else first
        return np.where(has, end, layout.STACK_NONE).astype(np.uint8)

    def close(self) -> None:
        self.events = Events(*(np.empty(0) for _ in range(5)))
        self._slots = None  # type: ignore[assignment]
        self._args = SlotArgs(np.empty(0, layout.SLOT_DTYPE))   # drops its views of the mapping
        if hasattr(self._mm, "close"):
            try:
                self._mm.close()
            except BufferError:
                pass  # arrays still refer to the mapping; it closes when they go


def _shape(tp: Tracepoint) -> list[tuple[str, str, int, int]]:
    return [(f.name, f.type, f.size, f.offset) for f in tp.fields]


def _slice_origin(meta: object) -> str:
    """One line on where a slice came from (osvtrace.format.slice), or "" for a whole trace."""
    extra = getattr(meta, "extra", {})
    if "sliced_from" not in extra:
        return ""
    try:
        lo, hi = int(extra["slice_since_ns"]) / 1e9, int(extra["slice_until_ns"]) / 1e9
        window = f"{lo:.6f} s to {hi:.6f} s"
    except (KeyError, ValueError):
        window = "an unknown window"
    text = f"slice of {extra['sliced_from']}, {window}"
    try:
        src = json.loads(extra.get("source_loss", "{}"))
    except ValueError:
        return text + "; its record of the original's loss is damaged"
    cpus = src.get("cpus", {})
    missing = sum(int(v.get("dropped_total", 0)) + int(v.get("gap_slots_total", 0)) + int(v.get("invalid_slots_total", 0))
                  for v in cpus.values())
    over = sum(int(v.get("overwritten_slots", 0)) for v in cpus.values())
    if missing or over or src.get("damage"):
        text += (f"; the whole original lost {missing:,} records/slots, {over:,} overwritten"
                 + (f", {len(src['damage'])} damage note(s)" if src.get("damage") else ""))
    return text


def _schema_drift(embedded: Catalog) -> list[str]:
    """Warnings where the file's schema and this tree's disagree on a tracepoint."""
    try:
        current = default_catalog()
    except Exception:
        return []
    out = []
    for tp in embedded.tracepoints:
        cur = current.by_id.get(tp.id)
        if cur is not None and (cur.name != tp.name or _shape(cur) != _shape(tp)):
            out.append(f"tracepoint {tp.id} is {tp.name} in the file but {cur.name} with other arguments here; "
                       f"decoding with the file's schema")
    # NOTE: the analyses read tracepoints by name and their arguments by name and type. One
    # whose arguments they would not find stays decodable (by id) but is hidden from them.
    for tp in list(embedded.by_name.values()):
        cur = current.by_name.get(tp.name)
        have = {f.name: f.type for f in tp.fields}
        if cur is not None and any(have.get(f.name) != f.type for f in cur.fields):
            del embedded.by_name[tp.name]
            out.append(f"tracepoint {tp.name[:40]} in the file lacks arguments this osvtrace reads; "
                       f"its records are left out of the analyses")
    return out


def open(path: str | os.PathLike, *, workers: int = 2, verify: bool = True) -> Trace:  # noqa: A001
    """Open and decode a trace file, chosen by its content: an .osvt (with up to `workers`
    threads; one below PARALLEL_MIN_BYTES), an OSv OSVT dump or an OSv gdb tracefile."""
    head = b""
    try:
        with builtins.open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        pass  # map_file says what is wrong, in our words
    if head and head[:8] != MAGIC[:len(head[:8])] and osv_dump.sniff(head):  # not .osvt, nor a cut one
        return osv_dump.OsvTrace(path)
    return OsvtTrace(path, workers=workers, verify=verify)
