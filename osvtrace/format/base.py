"""What every decoded trace offers, whichever file it came from.

The model, reports, SQL, exports, viewer and shell see a trace only through this
interface: the event columns, the catalog, arguments by name, threads, loss and a few
facts about the file. Two implementations: osvtrace.format.trace.OsvtTrace (our .osvt)
and osvtrace.format.osv_dump.OsvTrace (real OSv's trace files). `osvtrace.open` picks one
by the file's content.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, Field, Tracepoint
from osvtrace.errors import UsageError

# backtrace_ends of a file whose stacks say nothing of how their walk ended (real OSv's)
STACK_UNMARKED = 255


def id_mask(col: np.ndarray, ids) -> np.ndarray:
    """col == any of ids (tracepoint ids, CPUs: a few small integers): one comparison per id
    when they are few, a lookup table otherwise; a few times faster than np.isin on millions."""
    ids = np.unique(np.asarray(ids, np.int64).reshape(-1))
    if len(ids) <= 4:
        m = np.zeros(len(col), bool)
        for i in ids.tolist():
            m |= col == i
        return m
    top = int(col.max()) + 1 if len(col) else 0
    lut = np.zeros(top + 1, bool)
    lut[ids[(ids >= 0) & (ids < top)]] = True
    return lut[col]


MAX_STACK_WORDS = 255  # frames a backtrace_words row may hold (its counts are uint8)


def matrix_words(bt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frame matrix (rows innermost first, 0-padded) as Trace.backtrace_words gives stacks:
    (its bytes, the start of each row, frames per row)."""
    bt = np.ascontiguousarray(bt, np.uint64)
    if bt.ndim != 2:
        bt = bt.reshape(len(bt), -1)
    n, w = bt.shape
    if w > MAX_STACK_WORDS:
        raise ValueError(f"backtraces of {w} frames: at most {MAX_STACK_WORDS} are kept")
    return bt.view(np.uint8).reshape(-1), np.arange(n, dtype=np.int64) * (8 * w), np.full(n, w, np.uint8)


@dataclass
class Events:
    """The event table: one entry per record, in time order (ties keep CPU order)."""

    time: np.ndarray  # int64, ns since time zero
    cpu: np.ndarray  # uint16
    tid: np.ndarray  # uint32, thread that emitted the record
    tp: np.ndarray  # uint16, tracepoint id
    row: np.ndarray  # int32/int64: where the record is (file slot row, or record number)

    def __len__(self) -> int:
        return len(self.time)

    def take(self, idx: np.ndarray) -> "Events":
        return Events(self.time[idx], self.cpu[idx], self.tid[idx], self.tp[idx], self.row[idx])


@dataclass
class FileFacts:
    """What a trace file says about itself (the `info` command and the summary show it)."""

    kind: str  # "osvt", "osv-dump" (OSVT REST dump), "osv-tracefile" (gdb `osv trace save`)
    size: int = 0
    capture: str = ""
    cmdline: str = ""
    build_id: str = ""
    tsc_hz: int = 0
    wall_clock_ns: int = 0  # 0: unknown
    chunks: int = 0
    complete: bool = True
    status: str = ""
    damaged_chunks: int = 0
    truncated: bool = False
    damage: list[str] = field(default_factory=list)  # what was damaged or cut (the CLI exits 3)
    loss_known: bool = True  # False: the kernel counts no loss (OSv), so `loss` says nothing
    origin: str = ""  # a slice: of which trace, which window, and what that trace lost outside it


class Trace(ABC):
    """A decoded trace. Use :func:`osvtrace.open`."""

    path: Path
    events: Events
    loss: dict  # cpu -> osvtrace.format.decode.CpuLoss

    # ------------------------------------------------------------ what each file kind provides

    @property
    @abstractmethod
    def catalog(self) -> Catalog:
        """The trace's tracepoints."""

    @property
    @abstractmethod
    def facts(self) -> FileFacts:
        """What the file says about itself."""

    @property
    @abstractmethod
    def warnings(self) -> list[str]:
        """Everything a user should be told about the file (damage, schema drift, lost data)."""

    @property
    @abstractmethod
    def ncpus(self) -> int:
        """CPUs of the traced machine."""

    @cached_property
    @abstractmethod
    def seq(self) -> np.ndarray:
        """Per-CPU position of each event's record in its CPU's stream."""

    @abstractmethod
    def field_values(self, f: Field, rows: np.ndarray) -> np.ndarray:
        """Values of one argument for the records at the given rows (``events.row``)."""

    @abstractmethod
    def _thread_names(self) -> dict[int, str]:
        """Thread names the file knows (tid -> name)."""

    def close(self) -> None:
        """Drop the file's mapping (arrays still referring to it keep it alive)."""

    # ------------------------------------------------------------ shared

    def backtraces(self, idx: np.ndarray) -> np.ndarray:
        """The stacks of events ``idx``: an (n, depth) uint64 array, one row each, innermost
        frame first, 0 padding rows with fewer frames (and whole rows of records without one).
        Frames are return addresses (look a frame up at addr - 1 to find its call); frame 0 is
        in the function that hit the tracepoint. For a ``cpu_sample`` the interrupted PC is its
        ``pc`` argument and the row holds its callers. Both readers agree on this."""
        return np.zeros((len(idx), 0), np.uint64)

    def backtrace_words(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stacks of events ``idx`` where they lie, for interning without a copy:
        (buf uint8, start int64, count uint8): event k's frames are the count[k] 8-byte words
        at buf[start[k]:] (any alignment), innermost first, up to the first 0. A reader whose
        records hold their frames as consecutive words gives its own bytes; this default makes
        them from backtraces()."""
        return matrix_words(self.backtraces(idx))

    def backtrace_ends(self, idx: np.ndarray) -> np.ndarray:
        """Why each stack of events ``idx`` ends, uint8: osvtrace.catalog.layout's STACK_NONE
        (no stack), STACK_COMPLETE, STACK_CUT (the depth bound), STACK_BAD_FRAME (a frame pointer
        outside the thread's stack, or misaligned) or STACK_LOOP (one not above the last); a
        file that does not say (real OSv's) gives STACK_UNMARKED where there are frames."""
        bt = self.backtraces(idx)
        has = (bt != 0).any(axis=1) if bt.shape[1] else np.zeros(len(bt), bool)
        return np.where(has, STACK_UNMARKED, layout.STACK_NONE).astype(np.uint8)

    def symbol(self, addr: int) -> str | None:
        """The function at a code address, when the file says."""
        return None

    def cpu_starts(self) -> dict[int, int]:
        """Per CPU, the time of its first event (where a flight recorder's data starts)."""
        ev = self.events
        out = {}
        for c in range(self.ncpus):
            idx = np.flatnonzero(ev.cpu == c)
            if len(idx):
                out[c] = int(ev.time[idx[0]])
        return out

    @property
    def span_ns(self) -> tuple[int, int]:
        t = self.events.time
        return (int(t[0]), int(t[-1])) if len(t) else (0, 0)

    def __len__(self) -> int:
        return len(self.events)

    @cached_property
    def threads(self) -> dict[int, str]:
        """Thread names: what the file says, then a generic name for every thread id seen."""
        names = self._thread_names()
        for tid in self.tids().tolist():
            names.setdefault(int(tid), f"thread-{tid}" if tid else "kernel")
        return names

    def tids(self) -> np.ndarray:
        """The distinct thread ids that emitted records (a count per id when ids are small,
        which they are: both kernels' ids are dense; a sort otherwise)."""
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

    def tracepoint_ids(self, name: str) -> list[int]:
        """Every id that carries this name (OSv keys tracepoints by address, and one name
        can have several: each gets its own id, with the same arguments)."""
        ids = [tp.id for tp in self.catalog.tracepoints if tp.name == name]
        if not ids:
            self.tracepoint(name)  # raises the usual error
        return ids

    def args_at(self, tp: Tracepoint, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Arguments of events ``idx`` (all of tracepoint ``tp``, or of ids sharing its
        name and arguments) as columns by name."""
        rows = self.events.row[idx]
        return {f.name: self.field_values(f, rows) for f in tp.fields}

    def args(self, name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(event indices, argument columns) of every event of one tracepoint (all its ids)."""
        tp = self.tracepoint(name)
        ids = self.tracepoint_ids(name)
        if len(ids) == 1:
            idx = np.nonzero(self.events.tp == tp.id)[0]
        else:
            idx = np.nonzero(id_mask(self.events.tp, ids))[0]
        return idx, self.args_at(tp, idx)

    def field(self, name: str, fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A full-length column of the argument ``name`` for every tracepoint that has one
        (scalar arguments only) and the mask of events that carry it."""
        return field_column(self.catalog, self.events.tp, self.events.row, name, fill, self.field_values)

    def format_values(self, i: int) -> tuple[Tracepoint | None, dict[str, object]]:
        """Event i's tracepoint and its arguments as printable values."""
        tp = self.catalog.by_id.get(int(self.events.tp[i]))
        if tp is None:
            return None, {}
        row = self.events.row[i:i + 1]
        vals: dict[str, object] = {}
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
        return tp, vals

    def format_event(self, i: int) -> str:
        """The formatted arguments of event i (for printing only)."""
        tp, vals = self.format_values(i)
        if tp is None:
            return f"<unknown tracepoint {int(self.events.tp[i])}>"
        try:
            return tp.format.format(**vals)
        except Exception:  # the format comes from the file: any mismatch falls back to name=value
            return " ".join(f"{k}={v}" for k, v in vals.items())

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def field_column(catalog: Catalog, tps: np.ndarray, rows: np.ndarray, name: str, fill: int,
                 values: Callable[[Field, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The scalar argument `name` for events (tracepoint ids `tps`, rows `rows`) of every
    tracepoint that has one, `fill` elsewhere, and the mask of events carrying it;
    `values(field, rows)` reads one argument."""
    out = np.full(len(tps), fill, np.int64)
    mask = np.zeros(len(tps), bool)
    for tp in catalog.tracepoints:
        f = next((f for f in tp.fields if f.name == name and not f.is_blob), None)
        if f is None:
            continue
        idx = np.nonzero(tps == tp.id)[0]
        if len(idx):
            out[idx] = values(f, rows[idx])
            mask[idx] = True
    return out, mask
