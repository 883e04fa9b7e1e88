"""Encoding records into slots: the Python twin of the kernel's ring writer.

Used by synthetic traces (demo, tests, benchmarks) and by tests that build
traces with known answers. Vectorised: a batch of records of one tracepoint
becomes one (n, nslots, 32) array.
"""

from __future__ import annotations

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, Tracepoint


def encode(tp: Tracepoint, tsc: np.ndarray, thread: np.ndarray | int, /, **args: object) -> np.ndarray:
    """Slots (n, tp.nslots, 32) for n records of ``tp``; missing arguments are zero."""
    tsc = np.asarray(tsc, np.uint64).reshape(-1)
    n = len(tsc)
    out = np.zeros((n, tp.nslots, layout.SLOT_SIZE), np.uint8)
    hdr = out[:, 0, :].view(layout.SLOT_DTYPE).reshape(n)
    hdr["id"] = tp.id
    hdr["nslots"] = tp.nslots
    hdr["tid"] = thread
    hdr["tsc"] = tsc
    for k in range(1, tp.nslots):
        out[:, k, 0:2] = np.frombuffer(np.uint16(layout.ID_CONT).tobytes(), np.uint8)
        out[:, k, 2] = k
    names = {f.name for f in tp.fields}
    for key in args:
        if key not in names:
            raise KeyError(f"tracepoint {tp.name} has no argument {key!r}")
    for f in tp.fields:
        if f.name not in args:
            continue
        v = args[f.name]
        if f.is_blob:
            vals = np.zeros((n, f.size), np.uint8)
            src = [v] * n if isinstance(v, (bytes, str)) else list(v)  # type: ignore[arg-type]
            for i, b in enumerate(src):
                b = b.encode() if isinstance(b, str) else bytes(b)
                b = b[: f.size]
                vals[i, : len(b)] = np.frombuffer(b, np.uint8)
        else:
            vals = np.broadcast_to(np.asarray(v).astype(f.dtype), (n,)).copy().view(np.uint8).reshape(n, f.size)
        done = 0
        while done < f.size:
            k, off = layout.physical(f.offset + done)
            take = min(f.size - done, layout.SLOT_SIZE - off)
            out[:, k, off:off + take] = vals[:, done:done + take]
            done += take
    return out


def with_stack(slots: np.ndarray, frames: np.ndarray, end: int = layout.STACK_COMPLETE) -> np.ndarray:
    """Records ``slots`` (n, k, 32) with a stack trailer holding ``frames`` (n, depth),
    innermost first, as the kernel writes it (docs/format.md "Stack trailer")."""
    frames = np.asarray(frames, np.uint64).reshape(len(slots), -1)
    depth = frames.shape[1]
    if depth > layout.STACK_MAX_FRAMES:
        raise ValueError(f"a stack holds at most {layout.STACK_MAX_FRAMES} frames, not {depth}")
    n, k = slots.shape[:2]
    t = layout.stack_slots(depth)
    out = np.zeros((n, k + t, layout.SLOT_SIZE), np.uint8)
    out[:, :k] = slots
    out[:, 0, 2] = k + t
    out[:, 0, 3] |= layout.FLAG_STACK
    for j in range(t):
        out[:, k + j, 0:2] = np.frombuffer(np.uint16(layout.ID_CONT).tobytes(), np.uint8)
        out[:, k + j, 2] = k + j
    out[:, k, layout.STACK_DEPTH_OFFSET] = depth
    out[:, k, layout.STACK_END_OFFSET] = end
    for f in range(depth):
        j, pos = divmod(f, layout.STACK_FRAMES_PER_SLOT)
        at = layout.STACK_FRAME_OFFSET + 8 * pos
        out[:, k + j, at:at + 8] = frames[:, f:f + 1].view(np.uint8)
    return out


class CpuStreamBuilder:
    """Collects batches of records for one CPU and lays them out in time order."""

    def __init__(self, catalog: Catalog):
        self.cat = catalog
        self._batches: list[tuple[np.ndarray, np.ndarray]] = []  # (tsc per record, slots (n, k, 32))

    def add(self, name: str, tsc: np.ndarray, thread: np.ndarray | int, /, *, frames: np.ndarray | None = None,
            stack_end: int = layout.STACK_COMPLETE, **args: object) -> None:
        """A batch of records; with ``frames`` (n, depth) each carries a stack trailer."""
        tp = self.cat.by_name[name]
        slots = encode(tp, tsc, thread, **args)
        if frames is not None:
            slots = with_stack(slots, frames, stack_end)
        self._batches.append((np.asarray(tsc, np.uint64).reshape(-1), slots))

    def slots(self) -> np.ndarray:
        """All records as an (N, 32) uint8 array sorted by timestamp (stable)."""
        if not self._batches:
            return np.zeros((0, layout.SLOT_SIZE), np.uint8)
        tsc = np.concatenate([b[0] for b in self._batches])
        width = np.concatenate([np.full(len(b[0]), b[1].shape[1], np.int64) for b in self._batches])
        order = np.argsort(tsc, kind="stable")
        start = np.empty(len(tsc), np.int64)  # first output slot of each record
        start[order] = np.concatenate(([0], np.cumsum(width[order])[:-1]))
        out = np.empty((int(width.sum()), layout.SLOT_SIZE), np.uint8)
        base = 0
        for _, s in self._batches:
            pos = start[base:base + len(s)]
            for k in range(s.shape[1]):
                out[pos + k] = s[:, k]
            base += len(s)
        return out
