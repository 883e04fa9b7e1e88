"""Stacks as columns: each distinct backtrace once (a stack id), and per event its stack id.

A trace's backtraces are rows of return addresses, innermost first. Millions of records
share a few thousand stacks, so the model keeps each distinct row once and gives every event
an int32 stack id. The rows are read where the trace holds them (Trace.backtrace_words) and
interned by one compiled pass (osvtrace/model/_stack_loops.pyx: a hash table over the
distinct stacks, every hit compared frame by frame, so equal ids mean equal stacks): no
(records, depth) matrix is made, and Python does nothing per record. Ids are computed per
tracepoint on first use: a report over sched_wait reads sched_wait's backtraces only.

Bad stacks never stop anything: a 0 ends a stack (what follows is padding or garbage), an
address seen twice marks a loop (recursion, or a frame pointer walk that went round), and a
stack as deep as the trace's bound may have been cut by it. `stack` says which.
"""

from __future__ import annotations

import numpy as np

from osvtrace.format.base import id_mask, matrix_words
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

_HASH_MASK = np.uint64(2**64 - 1)  # tests set 0: every stack collides, the exact compare keeps them apart


def factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each key's distinct value, numbered in order of first appearance; index of
    each distinct value's first row), by a hash table (Arrow's dictionary encoding), not a
    sort: O(n) on millions of samples."""
    import pyarrow as pa

    enc = pa.array(keys).dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    first = np.empty(len(enc.dictionary), np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write of each code is its first row
    return codes, first


class Stacks:
    """The interned stacks of one trace, grown per tracepoint as reports ask for them."""

    def __init__(self, trace: Trace):
        self.trace = trace
        self.width = 0  # the deepest backtrace the trace's records carry
        # the most frames a record can hold: the file's word, else its kernel's, else the deepest seen
        self.bound = int(getattr(trace, "backtrace_len", 0) or 0) or kernel_of(trace).backtrace_depth
        # the distinct stacks: the first _n[0] rows of _rows (innermost first, 0-padded; spare rows
        # after them), and the hash table _stack_loops.intern_rows keeps over them
        self._rows = np.zeros((0, 0), np.uint64)
        self._n = np.zeros(1, np.int64)
        self._slot_id = np.zeros(1, np.int32)
        self._slot_hash = np.zeros(1, np.uint64)
        self._event_ids: np.ndarray | None = None  # int32 per event: its stack id, once its tracepoint is read
        self._done: set[int] = set()  # tracepoint ids whose events' stacks are in _event_ids

    @property
    def frames(self) -> np.ndarray:
        """(stacks, width) uint64: each distinct stack once, innermost first, 0-padded."""
        return self._rows[:int(self._n[0])]

    def __len__(self) -> int:
        return int(self._n[0])

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
        ev = np.flatnonzero(id_mask(tp, tps))
        self._event_ids[ev] = self.intern_words(*self.trace.backtrace_words(ev))
        self._done.update(tps)

    def intern(self, bt: np.ndarray) -> np.ndarray:
        """Stack ids of the rows of a backtrace matrix, adding the stacks not seen yet."""
        return self.intern_words(*matrix_words(bt))

    def intern_words(self, buf: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Stack ids of backtraces where they lie: row k is the count[k] 8-byte words at
        buf[start[k]:], up to the first 0 (Trace.backtrace_words), in one compiled pass that
        adds the stacks not seen yet (no (rows, width) matrix is made)."""
        from osvtrace.model._stack_loops import intern_rows

        n = len(start)
        ids = np.full(n, NO_STACK, np.int32)
        width = int(count.max()) if n else 0
        if not width:
            return ids
        self.width = max(self.width, width)
        if width > self._rows.shape[1]:  # wider rows: pad (a stack's hash covers its frames, not its padding)
            self._rows = np.pad(self._rows, ((0, 0), (0, width - self._rows.shape[1])))
        buf = np.ascontiguousarray(buf, np.uint8).reshape(-1)
        start = np.ascontiguousarray(start, np.int64)
        count = np.ascontiguousarray(count, np.uint8)
        row = 0
        while True:
            row = intern_rows(buf, start, count, row, self._rows, self._n, self._slot_id, self._slot_hash, ids,
                              _HASH_MASK)
            if row == n:
                return ids
            self._grow()

    def _grow(self) -> None:
        """Twice the room for distinct stacks, the hash table rebuilt over them (same ids)."""
        from osvtrace.model._stack_loops import intern_rows

        old = self.frames
        cap = max(1024, 2 * len(self._rows))
        rows = np.zeros((cap, self._rows.shape[1]), np.uint64)
        n = np.zeros(1, np.int64)
        slot_id, slot_hash = np.zeros(2 * cap, np.int32), np.zeros(2 * cap, np.uint64)
        ids = np.empty(len(old), np.int32)
        buf, start, count = matrix_words(old)
        assert intern_rows(buf, start, count, 0, rows, n, slot_id, slot_hash, ids, _HASH_MASK) == len(old)
        assert int(n[0]) == len(old) and np.array_equal(ids, np.arange(len(old)))  # NOTE: distinct rows: same ids
        self._rows, self._n, self._slot_id, self._slot_hash = rows, n, slot_id, slot_hash

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
