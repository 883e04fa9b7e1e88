"""Level of detail: a lane's items aggregated per pixel column, with a couple of searches.

A lane is a set of items (start, end, key, row): a CPU's slices keyed by thread, a thread's
states keyed by state, a mutex's holds keyed by owner, a tracepoint's events keyed by CPU.
A view asks for W pixel columns between t0 and t1; each column gets the key that covers most
of it, how much of it is covered and how many items touch it.

How it stays cheap at 10 M items: for any set of intervals, the time they cover before t is

    C(t) = sum over starts s < t of (t - s)  -  sum over ends e <= t of (t - e)

so with the starts and the ends each sorted, with prefix sums, C at all W+1 column edges is two
`searchsorted` calls and a little arithmetic, and a column's coverage is C(right) - C(left).
Per key the same, on one array of all keys' starts made sortable by adding key * SPAN to each
time: one `searchsorted` answers every (key, edge) pair at once. No scan over the items.

NOTE: the prefix sums may exceed int64 on long traces; the arithmetic is done in uint64,
which wraps modulo 2**64, and the differences we keep (coverage of one column, at most
items x column width) are small, so they come out exact all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from osvtrace.errors import UsageError

EMPTY = -1  # key of a column no item touches
OTHER = -2  # key of a column dominated by keys beyond the top ones
TOP_KEYS = 32  # per lane and view: keys shown by name; the rest are lumped as OTHER


@dataclass
class Cells:
    """One lane's view: per pixel column, the dominant key, covered share (0-100) and item count."""

    key: np.ndarray  # int64, EMPTY, OTHER or the key
    cover: np.ndarray  # uint8, percent of the column covered (overlapping items add up, capped at 100)
    count: np.ndarray  # int64, items touching the column


def edges(t0: int, t1: int, width: int) -> np.ndarray:
    """Column edges: t0 + floor(j * (t1 - t0) / width) for j = 0..width (integers, exact).
    viewer/js/lod.js computes the same edges."""
    j = np.arange(width + 1, dtype=np.int64)
    return t0 + (j * (t1 - t0)) // width


def _prefix(values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values) + 1, np.uint64)
    np.cumsum(values.astype(np.uint64), out=out[1:])
    return out


def _covered(e: np.ndarray, s_idx: np.ndarray, e_idx: np.ndarray, ps: np.ndarray, pe: np.ndarray,
             s_base: np.ndarray | int = 0, e_base: np.ndarray | int = 0) -> np.ndarray:
    """C(e) in uint64 (modular) from the counts of starts < e and ends <= e and prefix sums.
    s_base/e_base are the first global index of each key's run (0 for a lane-wide array)."""
    eu = e.astype(np.uint64)
    ns = (s_idx - s_base).astype(np.uint64)
    ne = (e_idx - e_base).astype(np.uint64)
    return ns * eu - (ps[s_idx] - ps[s_base]) - (ne * eu - (pe[e_idx] - pe[e_base]))


class LaneIndex:
    """A lane's items sorted for per-pixel queries and for listing the items in a range.

    Times are kept relative to `base` (the lane's first start) so the per-key composite
    keys (key number * SPAN + time) fit in int64."""

    def __init__(self, start: np.ndarray, end: np.ndarray, key: np.ndarray, row: np.ndarray | None = None):
        start = np.asarray(start, np.int64)
        end = np.maximum(np.asarray(end, np.int64), start + 1)  # a point event covers 1 ns
        key = np.asarray(key, np.int64)
        row = np.arange(len(start), dtype=np.int64) if row is None else np.asarray(row, np.int64)
        order = np.argsort(start, kind="stable")
        if len(order) and not (order[1:] > order[:-1]).all():
            start, end, key, row = start[order], end[order], key[order], row[order]
        self.n = len(start)
        self.start, self.end, self.key, self.row = start, end, key, row
        self.maxend = np.maximum.accumulate(end) if self.n else end
        self.base = int(start[0]) if self.n else 0
        self.span = (int(self.maxend[-1]) - self.base + 2) if self.n else 2
        rs, re_ = start - self.base, end - self.base
        # per key: runs of one key, each sorted by time, made searchable as key_no * SPAN + t
        self.keys, kno = np.unique(key, return_inverse=True) if self.n else (np.empty(0, np.int64),
                                                                               np.empty(0, np.int64))
        kno = kno.astype(np.int64)
        nk = len(self.keys)
        if nk * self.span >= 2**62:
            # NOTE: only a trace with timestamps centuries apart (a damaged clock) gets here
            raise UsageError(f"the viewer cannot index a lane {self.span / 1e9:.3g} s long with {nk} keys: the "
                             f"trace's timestamps are centuries apart (osvtrace report summary shows its span)")
        self.k_off = np.searchsorted(np.sort(kno), np.arange(nk + 1))
        ks = np.sort(kno * self.span + rs)  # the starts are already sorted: this groups by key
        ke = np.sort(kno * self.span + re_)
        kb = np.repeat(np.arange(nk, dtype=np.int64) * self.span, np.diff(self.k_off))
        self.ks, self.ke = ks, ke
        self.ps_k, self.pe_k = _prefix(ks - kb), _prefix(ke - kb)

    # ------------------------------------------------------------ queries

    def _clip(self, t: np.ndarray) -> np.ndarray:
        return np.clip(t - self.base, 0, self.span - 1)

    def cells(self, e: np.ndarray, top: int = TOP_KEYS) -> Cells:
        """Per column between consecutive edges `e` (absolute ns): dominant key, cover, count."""
        w = len(e) - 1
        if not self.n or w <= 0:
            return Cells(np.full(max(w, 0), EMPTY, np.int64), np.zeros(max(w, 0), np.uint8),
                         np.zeros(max(w, 0), np.int64))
        r = self._clip(e)
        # which keys appear in the view at all
        nk = len(self.keys)
        kb = np.arange(nk, dtype=np.int64) * self.span
        lo_hi = np.stack([kb + r[0], kb + r[-1]], axis=1)
        ksi = np.searchsorted(self.ks, lo_hi, "left")
        kei = np.searchsorted(self.ke, lo_hi, "right")
        present = np.nonzero(ksi[:, 1] - kei[:, 0] > 0)[0]
        lumped = len(present) > top
        if lumped:  # keep the keys covering most of the view
            local = np.broadcast_to(np.array([r[0], r[-1]]), lo_hi.shape)
            kcov = np.diff(_covered(local, ksi, kei, self.ps_k, self.pe_k, self.k_off[:-1, None],
                                    self.k_off[:-1, None]), axis=1)[:, 0].view(np.int64)
            present = np.sort(present[np.argsort(-kcov[present], kind="stable")[:top]])
        # per key: coverage of each column, from its starts and ends (one search for all keys)
        q = kb[present, None] + r[None, :]
        qs = np.searchsorted(self.ks, q, "left")
        qe = np.searchsorted(self.ke, q, "right")
        off = self.k_off[present, None]
        local = np.broadcast_to(r, q.shape)  # the sums are of times within each key's run
        cov = np.diff(_covered(local, qs, qe, self.ps_k, self.pe_k, off, off), axis=1).view(np.int64)
        keys = self.keys[present]
        if lumped:  # the whole lane, for the total and the count; the rest is OTHER
            s_all, e_all, ps_all, pe_all = self._lane_wide
            si = np.searchsorted(s_all, r, "left")
            ei = np.searchsorted(e_all, r, "right")
            total = np.diff(_covered(r, si, ei, ps_all, pe_all)).view(np.int64)
            count = si[1:] - ei[:-1]
            rest = total - cov.sum(axis=0)
            if (rest > 0).any():
                cov = np.vstack([cov, rest])
                keys = np.append(keys, OTHER)
        else:
            total = cov.sum(axis=0)
            count = (qs[:, 1:] - qe[:, :-1]).sum(axis=0)
        dom = keys[np.argmax(cov, axis=0)] if len(keys) else np.full(w, EMPTY, np.int64)
        dom = np.where(count > 0, dom, EMPTY)
        width = np.maximum(np.diff(e), 1)
        cover = np.minimum(total * 100 // width, 100).astype(np.uint8)
        return Cells(dom, cover, count)

    @cached_property
    def _lane_wide(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All keys' starts and ends, sorted, with prefix sums (only views with many keys need them)."""
        e_all = np.sort(self.end - self.base)
        s_all = self.start - self.base
        return s_all, e_all, _prefix(s_all), _prefix(e_all)

    def range(self, t0: int, t1: int) -> tuple[int, int]:
        """Index bounds [lo, hi) of the candidates overlapping [t0, t1) (filter with end > t0)."""
        lo = int(np.searchsorted(self.maxend, t0, "right"))
        hi = int(np.searchsorted(self.start, t1, "left"))
        return lo, max(lo, hi)

    def items(self, t0: int, t1: int, limit: int) -> np.ndarray | None:
        """Indices of the items overlapping [t0, t1), or None if there are more than `limit`."""
        lo, hi = self.range(t0, t1)
        if hi - lo > limit:
            idx = np.arange(lo, hi)
            idx = idx[self.end[idx] > t0]
            return idx if len(idx) <= limit else None
        idx = np.arange(lo, hi)
        return idx[self.end[idx] > t0]

    def at(self, t: int, tol: int = 0) -> int | None:
        """Index of the item covering t, else the nearest within tol; None if none."""
        lo, hi = self.range(t - tol, t + tol + 1)
        if hi <= lo:
            return None
        idx = np.arange(lo, hi)
        s, e = self.start[idx], self.end[idx]
        dist = np.where(t < s, s - t, np.where(t >= e, t - e + 1, 0))
        ok = dist <= tol
        if not ok.any():
            return None
        # covering items first, then the nearest; among covering ones the shortest (the most specific)
        best = np.lexsort((e - s, dist))
        best = best[ok[best]]
        return int(idx[best[0]])

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.start, self.end, self.key, self.row, self.maxend, self.ks, self.ke,
                                      self.ps_k, self.pe_k))


def brute_cells(start: np.ndarray, end: np.ndarray, key: np.ndarray, e: np.ndarray) -> Cells:
    """The same answer as LaneIndex.cells by looking at every item (for tests), without top-K lumping."""
    start = np.asarray(start, np.int64)
    end = np.maximum(np.asarray(end, np.int64), start + 1)
    w = len(e) - 1
    keys = np.unique(key)
    cov = np.zeros((len(keys), w), np.int64)
    count = np.zeros(w, np.int64)
    for s, en, k in zip(start.tolist(), end.tolist(), np.asarray(key).tolist()):
        ki = int(np.searchsorted(keys, k))
        for j in range(w):
            ov = min(en, int(e[j + 1])) - max(s, int(e[j]))
            if ov > 0:
                cov[ki, j] += ov
                count[j] += 1
    dom = keys[np.argmax(cov, axis=0)] if len(keys) else np.full(w, EMPTY)
    dom = np.where(count > 0, dom, EMPTY)
    width = np.maximum(np.diff(e), 1)
    cover = np.minimum(cov.sum(axis=0) * 100 // width, 100).astype(np.uint8)
    return Cells(dom.astype(np.int64), cover, count)
