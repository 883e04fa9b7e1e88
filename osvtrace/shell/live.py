"""Live sources: batches of newly decoded events from a recording in progress.

The live screen (top.py) needs only :class:`LiveSource`: something whose ``poll()``
returns the events that arrived since the last call, as columns. Today's source follows
a growing .osvt file (a writer appends chunks; every poll re-scans the sections and
decodes only the chunks not seen before). NOTE: a streaming recorder (`osvtrace record`
over virtio-serial) can feed the screen either by writing its .osvt file as it goes, which
this source follows as is, or by implementing LiveSource directly on the ring bytes it
drains (decode.decode() over the drained chunks, as poll() does here).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from osvtrace import layout
from osvtrace.decode import decode
from osvtrace.errors import TraceFormatError, UsageError
from osvtrace.osvt import Chunk, map_file, scan, schema_from_proto
from osvtrace.schema import Catalog, Field, default_catalog


@dataclass
class Batch:
    """Events that arrived together, in time order, with what the source knows so far."""

    time: np.ndarray  # int64 ns
    cpu: np.ndarray  # uint16
    tid: np.ndarray  # uint32
    tp: np.ndarray  # uint16
    catalog: Catalog
    ncpus: int
    threads: dict[int, str] = field(default_factory=dict)  # every name known so far
    lost: dict[int, int] = field(default_factory=dict)  # per CPU, records/slots missing so far (cumulative)
    finished: bool = False  # the recording ended (the file has its trailer)
    _reader: "_ArgReader | None" = None

    def __len__(self) -> int:
        return len(self.time)

    def field(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, mask): the scalar argument `name` of every event that has one (0 elsewhere)."""
        out = np.zeros(len(self), np.int64)
        mask = np.zeros(len(self), bool)
        for tp in self.catalog.tracepoints:
            f = next((f for f in tp.fields if f.name == name and not f.is_blob), None)
            if f is None:
                continue
            sel = np.nonzero(self.tp == tp.id)[0]
            if len(sel) and self._reader is not None:
                out[sel] = self._reader.values(f, sel)
                mask[sel] = True
        return out, mask

    def args(self, name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(indices, argument columns) of this batch's events of one tracepoint."""
        tp = self.catalog.by_name[name]
        sel = np.nonzero(self.tp == tp.id)[0]
        if self._reader is None:
            return sel, {f.name: np.empty(0, f.dtype) for f in tp.fields}
        return sel, {f.name: self._reader.values(f, sel) for f in tp.fields}


class LiveSource(Protocol):
    """Where the live screen gets events from."""

    name: str

    def poll(self) -> Batch | None:
        """Events that arrived since the last call (None: nothing new yet)."""
        ...

    def close(self) -> None:
        ...


class _ArgReader:
    """Arguments of a batch's events, read from the slots of the mapped file."""

    def __init__(self, slots: np.ndarray, rows: np.ndarray):
        self.raw = slots.view(np.uint8).reshape(-1, layout.SLOT_SIZE)
        self.rows = rows.astype(np.int64)

    def values(self, f: Field, sel: np.ndarray) -> np.ndarray:
        rows = self.rows[sel]
        if not f.is_blob:  # a strided view of the field in every slot, then one 1-D gather
            k, off = layout.physical(f.offset)
            col = self.raw[:, off:off + f.size].view(f.dtype)[:, 0]
            return col[rows + k if k else rows]
        out = np.empty((len(rows), f.size), np.uint8)
        done = 0
        while done < f.size:  # a value may span slots (strings): copy piece by piece
            k, off = layout.physical(f.offset + done)
            take = min(f.size - done, layout.SLOT_SIZE - off)
            out[:, done:done + take] = self.raw[rows + k, off:off + take]
            done += take
        if f.type == "bytes":
            return out
        return out.view(f.dtype).reshape(-1)


class GrowingFileSource:
    """Follows an .osvt file that a writer is still appending to (or has finished)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.name = str(self.path)
        self.catalog: Catalog | None = None
        self._size = -1
        self._seen_offset = -1  # file offset of the last chunk already decoded
        self._expect: dict[int, int] = {}  # per CPU: next slot sequence number
        self._gaps: dict[int, int] = {}
        self._dropped: dict[int, int] = {}
        self.events = 0
        self.finished = False

    def poll(self) -> Batch | None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return None  # not created yet: keep waiting
        if size == self._size:
            return None
        mm = map_file(self.path)
        try:
            sc = scan(mm, self.name, verify=True, workers=1)
        except TraceFormatError:
            if self._size < 0 and size < 1 << 20:
                return None  # the writer has not finished its metadata yet
            raise
        self._size = size
        if self.catalog is None:
            self.catalog = schema_from_proto(sc.meta.schema) if sc.meta.schema.tracepoints else default_catalog()
        new = [c for c in sc.chunks if c.offset > self._seen_offset]
        self.finished = sc.trailer is not None
        meta = sc.meta
        ncpus = max(meta.ncpus, max((c.cpu for c in sc.chunks), default=-1) + 1)
        if not new:
            return Batch(*(np.empty(0, t) for t in (np.int64, np.uint16, np.uint32, np.uint16)), self.catalog,
                         ncpus, dict(sc.threads), self.lost, self.finished)
        self._seen_offset = max(c.offset for c in new)
        self._account(new)
        n = len(mm) // layout.SLOT_SIZE
        slots = np.frombuffer(mm, layout.SLOT_DTYPE, count=n)
        d = decode(slots, new, self.catalog, tsc_hz=meta.tsc_hz or 1_000_000_000, tsc_boot=meta.tsc_boot,
                   tsc_offsets=list(meta.tsc_offset), workers=1)
        self.events += len(d.time)
        b = Batch(d.time, d.cpu, d.tid, d.tp, self.catalog, ncpus, dict(sc.threads), self.lost, self.finished,
                  _ArgReader(slots, d.rows))
        return b

    def _account(self, chunks: list[Chunk]) -> None:
        """Loss as the chunks arrive: gaps in each CPU's slot sequence, and the ring's drop counter."""
        for c in sorted(chunks, key=lambda c: (c.cpu, c.first_seq)):
            exp = self._expect.get(c.cpu)
            if exp is not None and c.first_seq > exp:
                self._gaps[c.cpu] = self._gaps.get(c.cpu, 0) + c.first_seq - exp
            self._expect[c.cpu] = max(exp or 0, c.first_seq + c.nslots)
            self._dropped[c.cpu] = max(self._dropped.get(c.cpu, 0), c.lost_total)

    @property
    def lost(self) -> dict[int, int]:
        cpus = set(self._gaps) | set(self._dropped)
        return {c: self._gaps.get(c, 0) + self._dropped.get(c, 0) for c in sorted(cpus)}

    def close(self) -> None:
        pass


def open_source(spec: str) -> LiveSource:
    """A live source from what the user named: a trace file being written (works today),
    a socket or an application to record (need the streaming recorder)."""
    p = Path(spec)
    try:
        st = p.stat()
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UsageError(f"--live {spec}: {e.strerror}") from None
    if st is not None and stat.S_ISSOCK(st.st_mode):
        raise UsageError(f"--live {spec}: attaching to a virtio-serial socket needs the streaming recorder "
                         f"(`osvtrace record` over virtio-serial), which is not built yet; follow the .osvt file "
                         f"a recording writes instead: osvtrace shell --live FILE.osvt")
    if st is not None and stat.S_ISREG(st.st_mode) or spec.endswith(".osvt"):
        return GrowingFileSource(p)  # a file not there yet is waited for
    if st is not None:
        raise UsageError(f"--live {spec}: not a trace file or a socket")
    raise UsageError(f"--live {spec}: starting a recording of an application needs the streaming recorder "
                     f"(`osvtrace record` over virtio-serial), which is not built yet; record to a file and follow "
                     f"it: osvtrace shell --live FILE.osvt")
