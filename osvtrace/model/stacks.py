"""Stacks as columns: each distinct backtrace once (a stack id), and per event its stack id.

A trace's backtraces (Trace.backtraces) are a (n, depth) matrix of return addresses,
innermost first, 0-padded. Millions of records share a few thousand stacks, so the model
keeps each distinct row once, interned by a 64-bit hash of the row and checked exactly (a
collision falls back to np.unique over rows), and gives every event an int32 stack id.
Ids are computed per tracepoint on first use: a report over sched_wait reads sched_wait's
backtraces only.

Bad stacks never stop anything: a 0 ends a stack (what follows is padding or garbage), an
address seen twice marks a loop (recursion, or a frame pointer walk that went round), and a
stack as deep as the trace's bound may have been cut by it. `stack` says which.
"""

from __future__ import annotations

import numpy as np

from osvtrace.format.trace import Trace
from osvtrace.model.kernel_map import kernel_of
from osvtrace.model.table import Column, Table, TableSpec, table

NO_STACK = -1  # the event has no backtrace (not recorded, or 0 frames)

STACK = TableSpec("stack", "One row per distinct backtrace of the records that carry one (interned: equal stacks "
                  "share an id).", (
    Column("stack_id", "int32", "stack id (event_stack and stack_frame join on it)"),
    Column("depth", "int32", "frames (up to the first 0)"),
    Column("leaf", "uint64", "innermost return address", "addr"),
    Column("cut", "bool", "as deep as the trace's backtraces go: outer frames may be missing"),
    Column("loop", "bool", "an address appears twice (recursion, or a bad frame pointer walk)"),
))

STACK_FRAME = TableSpec("stack_frame", "One row per frame of each distinct stack, innermost first.", (
    Column("stack_id", "int32", "stack id"),
    Column("level", "int32", "0: innermost (where the record was taken)"),
    Column("addr", "uint64", "return address", "addr"),
    Column("function", "object", "function holding it (the trace's symbols; the address when unknown)"),
))

EVENT_STACK = TableSpec("event_stack", "One row per record with a backtrace: its stack.", (
    Column("event", "int64", "index of the record in events"),
    Column("stack_id", "int32", "its stack"),
))

# one odd 64-bit multiplier per frame position: a row's hash is sum(frame * weight) mod 2**64,
# a matrix-vector product (no Python loop, no temporary); 0s (the padding) add nothing, so a
# stack hashes the same at any padded width. Collisions are caught by the exact check.
_WEIGHTS = np.random.default_rng(0x5EED).integers(0, 2**62, 256, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_CHECK_ROWS = 1 << 20  # rows compared at a time by the exact check (bounds its temporary)


def row_hash(frames: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row, the same whatever 0 padding follows."""
    w = frames.shape[1]
    weights = _WEIGHTS[:w] if w <= len(_WEIGHTS) else np.resize(_WEIGHTS, w)
    with np.errstate(over="ignore"):
        return frames @ weights if len(frames) and w else np.zeros(len(frames), np.uint64)


def factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys in order of first appearance, index of each key's first row), by a hash
    table (Arrow's dictionary encoding), not a sort: O(n) on millions of samples."""
    import pyarrow as pa

    enc = pa.array(keys).dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    first = np.empty(len(enc.dictionary), np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write of each code is its first row
    return codes, first


def normalize(frames: np.ndarray) -> np.ndarray:
    """Frames after a row's first 0 zeroed: a 0 ends a stack."""
    frames = np.asarray(frames, np.uint64)
    if frames.ndim != 2:
        frames = frames.reshape(len(frames), -1)
    if frames.shape[1] < 2:
        return frames
    zero = frames == 0
    if not (zero[:, :-1] & ~zero[:, 1:]).any():  # no frame after a 0: the usual case, nothing to do
        return frames
    live = np.cumprod(~zero, axis=1, dtype=np.uint8).astype(bool)
    return np.where(live, frames, np.uint64(0))


class Stacks:
    """The interned stacks of one trace, grown per tracepoint as reports ask for them."""

    def __init__(self, trace: Trace):
        self.trace = trace
        self.frames = np.zeros((0, 0), np.uint64)  # (stacks, width), innermost first, 0-padded
        self.width = 0  # the deepest backtrace the trace's records carry
        # the most frames a record can hold: the file's word, else its kernel's, else the deepest seen
        self.bound = int(getattr(trace, "backtrace_len", 0) or 0) or kernel_of(trace).backtrace_depth
        self._hashes = np.empty(0, np.uint64)  # sorted hashes of the stacks so far
        self._hash_ids = np.empty(0, np.int32)  # the stack id of each
        self._event_ids: np.ndarray | None = None  # int32 per event: its stack id, once its tracepoint is read
        self._done: set[int] = set()  # tracepoint ids whose events' stacks are in _event_ids

    def __len__(self) -> int:
        return len(self.frames)

    def ids(self, idx: np.ndarray) -> np.ndarray:
        """The stack id of each event in idx (NO_STACK where it has no backtrace)."""
        idx = np.asarray(idx, np.int64)
        tp = self.trace.events.tp
        present = np.flatnonzero(np.bincount(tp[idx], minlength=1)).tolist() if len(idx) else []
        self._read([t for t in present if t not in self._done])
        return self._event_ids[idx] if self._event_ids is not None else np.full(len(idx), NO_STACK, np.int32)

    def _read(self, tps: list[int]) -> None:
        """Intern the backtraces of every event of these tracepoints (one read for all)."""
        if not tps:
            return
        tp = self.trace.events.tp
        if self._event_ids is None:
            self._event_ids = np.full(len(tp), NO_STACK, np.int32)
        ev = np.flatnonzero(np.isin(tp, np.array(tps, tp.dtype)))
        self._event_ids[ev] = self.intern(self.trace.backtraces(ev))
        self._done.update(tps)

    def intern(self, bt: np.ndarray) -> np.ndarray:
        """Stack ids of the rows of a backtrace matrix, adding the stacks not seen yet."""
        bt = normalize(bt)
        n = len(bt)
        ids = np.full(n, NO_STACK, np.int32)
        if not n or not bt.shape[1]:
            return ids
        self.width = max(self.width, bt.shape[1])
        has = bt[:, 0] != 0
        every = bool(has.all())
        rows = bt if every else bt[has]
        codes, first = factorize(row_hash(rows))
        uniq = rows[first]
        uh = row_hash(uniq)
        if not _rows_equal_at(rows, uniq, codes):  # a hash collision: exact, slower
            return self._intern_exact(bt, has, ids)
        pos = np.searchsorted(self._hashes, uh)
        known = pos < len(self._hashes)
        known[known] = self._hashes[pos[known]] == uh[known]
        uid = np.empty(len(uh), np.int32)
        uid[known] = self._hash_ids[pos[known]]
        w = max(self.frames.shape[1], uniq.shape[1])
        if known.any() and not _rows_equal(_pad(uniq[known], w), _pad(self.frames[uid[known]], w)):
            return self._intern_exact(bt, has, ids)
        new = np.flatnonzero(~known)
        uid[new] = len(self.frames) + np.arange(len(new), dtype=np.int32)
        self._append(uniq[new], uh[new], uid[new])
        if every:
            ids[:] = uid[codes]
        else:
            ids[has] = uid[codes]
        return ids

    def _intern_exact(self, bt: np.ndarray, has: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Interning by comparing whole rows, keeping the ids given so far (only after a hash
        collision, which 64 bits make rare; lookups by hash then keep landing here: slower,
        never wrong)."""
        w = max(self.frames.shape[1], bt.shape[1])
        rows, old = _pad(bt[has], w), _pad(self.frames, w)
        e = len(old)
        uniq, inv = np.unique(np.concatenate([old, rows]), axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        to_id = np.full(len(uniq), -1, np.int64)
        to_id[inv[:e]] = np.arange(e)
        fresh = np.unique(inv[e:][to_id[inv[e:]] < 0])
        to_id[fresh] = e + np.arange(len(fresh))
        self.frames = np.concatenate([old, uniq[fresh]])
        h = row_hash(self.frames)
        o = np.argsort(h, kind="stable")
        self._hashes, self._hash_ids = h[o], o.astype(np.int32)
        ids[has] = to_id[inv[e:]].astype(np.int32)
        return ids

    def _append(self, rows: np.ndarray, hashes: np.ndarray, ids: np.ndarray) -> None:
        w = max(self.frames.shape[1], rows.shape[1])
        self.frames = np.concatenate([_pad(self.frames, w), _pad(rows, w)])
        h = np.concatenate([self._hashes, hashes])
        i = np.concatenate([self._hash_ids, ids])
        o = np.argsort(h, kind="stable")
        self._hashes, self._hash_ids = h[o], i[o]

    # ------------------------------------------------------------ per stack

    def depth(self) -> np.ndarray:
        return (self.frames != 0).sum(axis=1).astype(np.int32)

    def loops(self) -> np.ndarray:
        """Stacks in which an address appears twice."""
        f = np.sort(self.frames, axis=1)
        return ((f[:, 1:] == f[:, :-1]) & (f[:, 1:] != 0)).any(axis=1) if f.shape[1] > 1 else np.zeros(len(f), bool)

    def cut(self) -> np.ndarray:
        """Stacks as deep as the trace's bound: their outer frames may be missing."""
        bound = self.bound or self.width
        return self.depth() >= bound if bound else np.zeros(len(self.frames), bool)

    def all_events(self) -> np.ndarray:
        """Stack ids of every event (computes every tracepoint's)."""
        return self.ids(np.arange(len(self.trace.events)))


def _pad(m: np.ndarray, width: int) -> np.ndarray:
    """A frame matrix widened to `width` columns with 0s."""
    return m if m.shape[1] == width else np.pad(m, ((0, 0), (0, width - m.shape[1])))


def _rows_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _rows_equal_at(rows: np.ndarray, uniq: np.ndarray, codes: np.ndarray) -> bool:
    """Whether every row equals uniq[its code], in blocks (a bounded temporary)."""
    return all(np.array_equal(uniq[codes[i:i + _CHECK_ROWS]], rows[i:i + _CHECK_ROWS])
               for i in range(0, len(rows), _CHECK_ROWS))


def stack_table(stacks: Stacks) -> Table:
    f = stacks.frames
    return table(STACK, stack_id=np.arange(len(f), dtype=np.int32), depth=stacks.depth(),
                 leaf=f[:, 0] if f.shape[1] else np.zeros(len(f), np.uint64), cut=stacks.cut(), loop=stacks.loops())


def stack_frame_table(stacks: Stacks) -> Table:
    from osvtrace.model.frames import frame_names

    f = stacks.frames
    sid, level = np.nonzero(f)
    addr = f[sid, level]
    names = frame_names(stacks.trace, addr)
    return table(STACK_FRAME, stack_id=sid.astype(np.int32), level=level.astype(np.int32), addr=addr,
                 function=names.function[names.index(addr)])


def event_stack_table(stacks: Stacks) -> Table:
    ids = stacks.all_events()
    ev = np.flatnonzero(ids != NO_STACK)
    return table(EVENT_STACK, event=ev, stack_id=ids[ev])
