"""Per-key time matching, vectorised: "for each A, the next B of the same key at or after
A's time" (or the last one at or before it).

A and B are put in one (key, time) order with two stable sorts: by time (the inputs
are usually already time-ordered runs, which timsort merges), then by a dense key rank
(a radix sort when there are at most 65536 keys). A running minimum (or maximum) of B
positions then answers every A in one pass: no per-key loop, no binary searches.
"""

from __future__ import annotations

import numpy as np


def dense_rank(*keys: np.ndarray) -> list[np.ndarray]:
    """Dense ranks (0..k-1) of the keys of several arrays, in one shared numbering."""
    allk = np.concatenate([np.asarray(k) for k in keys]) if keys else np.empty(0)
    if not len(allk):
        return [np.empty(0, np.int64) for _ in keys]
    _, inv = np.unique(allk, return_inverse=True)
    out, pos = [], 0
    for k in keys:
        out.append(inv[pos:pos + len(k)])
        pos += len(k)
    return out


def _key_time_order(rank: np.ndarray, time: np.ndarray) -> np.ndarray:
    o1 = np.argsort(time, kind="stable")
    r = rank[o1]
    if len(r) and int(r.max()) < 1 << 16:
        return o1[np.argsort(r.astype(np.uint16), kind="stable")]
    return o1[np.argsort(r, kind="stable")]


def next_match(a_rank: np.ndarray, a_time: np.ndarray, b_rank: np.ndarray, b_time: np.ndarray) -> np.ndarray:
    """Index into B of the first B with the same rank and time >= A's time, or -1, for each A."""
    na, nb = len(a_rank), len(b_rank)
    if not na or not nb:
        return np.full(na, -1, np.int64)
    # A before B at equal times, so a B at the same instant counts as "at or after"
    rank = np.concatenate([a_rank, b_rank]).astype(np.int64)
    order = _key_time_order(rank, np.concatenate([a_time, b_time]))
    n = na + nb
    is_b = order >= na
    pos = np.where(is_b, np.arange(n), n)
    nxt = np.minimum.accumulate(pos[::-1])[::-1]
    a_pos = np.nonzero(~is_b)[0]
    cand = nxt[a_pos]
    ok = cand < n
    ok[ok] &= rank[order[cand[ok]]] == rank[order[a_pos[ok]]]
    res = np.full(na, -1, np.int64)
    res[order[a_pos[ok]]] = order[cand[ok]] - na
    return res


def last_match(a_rank: np.ndarray, a_time: np.ndarray, b_rank: np.ndarray, b_time: np.ndarray) -> np.ndarray:
    """Index into B of the last B with the same rank and time <= A's time, or -1, for each A."""
    na, nb = len(a_rank), len(b_rank)
    if not na or not nb:
        return np.full(na, -1, np.int64)
    # B before A at equal times, so a B at the same instant counts as "at or before"
    rank = np.concatenate([b_rank, a_rank]).astype(np.int64)
    order = _key_time_order(rank, np.concatenate([b_time, a_time]))
    n = na + nb
    is_b = order < nb
    pos = np.where(is_b, np.arange(n), -1)
    prv = np.maximum.accumulate(pos)
    a_pos = np.nonzero(~is_b)[0]
    cand = prv[a_pos]
    ok = cand >= 0
    ok[ok] &= rank[order[cand[ok]]] == rank[order[a_pos[ok]]]
    res = np.full(na, -1, np.int64)
    res[order[a_pos[ok]] - nb] = order[cand[ok]]
    return res
