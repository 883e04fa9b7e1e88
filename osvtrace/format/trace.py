"""A decoded trace: columnar events, arguments by name, threads and loss.

``osvtrace.open(path)`` is the entry point. The event columns are numpy
arrays in time order; arguments are read from the mapped file on demand, per
tracepoint, with one vectorised gather each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, Field, Tracepoint, default_catalog
from osvtrace.errors import UsageError
from osvtrace.format.args import SlotArgs
from osvtrace.format.decode import CpuLoss, decode
from osvtrace.format.osvt import SectionScan, map_file, scan, schema_from_proto

# Captures whose per-CPU streams start at slot 0 (a snapshot of a ring starts where it was)
STREAMED_CAPTURES = ("virtio",)


@dataclass
class Events:
    """The event table: one entry per record, in time order (ties keep CPU order)."""

    time: np.ndarray  # int64, ns since time zero
    cpu: np.ndarray  # uint16
    tid: np.ndarray  # uint32, thread that emitted the record
    tp: np.ndarray  # uint16, tracepoint id
    row: np.ndarray  # int32 (int64 for huge files): file slot index of the header slot

    def __len__(self) -> int:
        return len(self.time)

    def take(self, idx: np.ndarray) -> "Events":
        return Events(self.time[idx], self.cpu[idx], self.tid[idx], self.tp[idx], self.row[idx])


# Smaller files are read by one thread: measured here, a 1 M-event file (32 MiB) decodes in
# ~22 ms with one and no faster with two (thread start-up, page faults taking the same lock);
# from ~4 M events on, two threads win (10 M: ~125 ms against ~200 ms).
PARALLEL_MIN_BYTES = 128 << 20


class Trace:
    """A trace file, decoded. Use :func:`open`."""

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
                   streamed=meta.capture in STREAMED_CAPTURES)
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

    @property
    def ncpus(self) -> int:
        return max(self.meta.ncpus, max(self.loss, default=-1) + 1)

    @property
    def span_ns(self) -> tuple[int, int]:
        t = self.events.time
        return (int(t[0]), int(t[-1])) if len(t) else (0, 0)

    def __len__(self) -> int:
        return len(self.events)

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

    @cached_property
    def threads(self) -> dict[int, str]:
        """Thread names: from the file's metadata, then thread_create records."""
        names = dict(self.scan.threads)
        tp = self.catalog.by_name.get("thread_create")
        if tp is not None:
            idx = np.nonzero(self.events.tp == tp.id)[0]
            if len(idx):
                a = self.args_at(tp, idx)
                for tid, name in zip(a["tid"].tolist(), a["name"].tolist()):
                    names.setdefault(int(tid), name.decode("utf-8", "replace"))
        for tid in self.tids().tolist():
            names.setdefault(int(tid), f"thread-{tid}" if tid else "kernel")
        return names

    def tids(self) -> np.ndarray:
        """The distinct thread ids that emitted records (a count per id when ids are small,
        which they are: the kernel hands out dense ids; a sort otherwise)."""
        tid = self.events.tid
        if not len(tid):
            return np.empty(0, np.uint32)
        top = int(tid.max())
        if top < 1 << 22:
            return np.flatnonzero(np.bincount(tid, minlength=top + 1)).astype(np.uint32)
        return np.unique(tid)

    def thread_name(self, tid: int) -> str:
        return self.threads.get(int(tid), f"thread-{tid}")

    def tracepoint(self, name: str) -> Tracepoint:
        try:
            return self.catalog.by_name[name]
        except KeyError:
            raise UsageError(f"{self.path}: unknown tracepoint {name!r}") from None

    # ------------------------------------------------------------ arguments

    def field_values(self, f: Field, rows: np.ndarray) -> np.ndarray:
        """Values of one argument for records starting at the given file rows."""
        return self._args.values(f, rows)

    def args_at(self, tp: Tracepoint, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Arguments of events ``idx`` (all of tracepoint ``tp``) as columns by name."""
        rows = self.events.row[idx]
        return {f.name: self.field_values(f, rows) for f in tp.fields}

    def args(self, name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(event indices, argument columns) of every event of one tracepoint."""
        tp = self.tracepoint(name)
        idx = np.nonzero(self.events.tp == tp.id)[0]
        return idx, self.args_at(tp, idx)

    def field(self, name: str, fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A full-length column of the argument ``name`` for every tracepoint that has one
        (scalar arguments only) and the mask of events that carry it."""
        return self._args.field(self.catalog, self.events.tp, self.events.row, name, fill)

    def format_event(self, i: int) -> str:
        """The formatted arguments of event i (for printing only)."""
        tp = self.catalog.by_id.get(int(self.events.tp[i]))
        if tp is None:
            return f"<unknown tracepoint {int(self.events.tp[i])}>"
        row = self.events.row[i:i + 1]
        vals = {}
        for f in tp.fields:
            v = self.field_values(f, row)[0]
            if f.type == "str":
                vals[f.name] = v.decode("utf-8", "replace")
            elif f.type == "bytes":
                vals[f.name] = bytes(v).hex()
            elif f.type == "ptr":
                vals[f.name] = f"{int(v):#x}"
            elif f.enum:
                vals[f.name] = self.catalog.enum_name(f.enum, int(v))
            elif f.type == "bool":
                vals[f.name] = bool(v)
            elif f.type == "tid":
                vals[f.name] = f"{int(v)}({self.thread_name(int(v))})"
            else:
                vals[f.name] = int(v)
        try:
            return tp.format.format(**vals)
        except Exception:  # the format comes from the file: any mismatch falls back to name=value
            return " ".join(f"{k}={v}" for k, v in vals.items())

    def close(self) -> None:
        self.events = Events(*(np.empty(0) for _ in range(5)))
        self._slots = None  # type: ignore[assignment]
        self._args = SlotArgs(np.empty(0, layout.SLOT_DTYPE))   # drops its views of the mapping
        if hasattr(self._mm, "close"):
            try:
                self._mm.close()
            except BufferError:
                pass  # arrays still refer to the mapping; it closes when they go

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shape(tp: Tracepoint) -> list[tuple[str, str, int, int]]:
    return [(f.name, f.type, f.size, f.offset) for f in tp.fields]


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
    """Open and decode an .osvt trace file (with up to `workers` threads; one below
    PARALLEL_MIN_BYTES)."""
    return Trace(path, workers=workers, verify=verify)
