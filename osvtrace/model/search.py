"""Per-key time searches, vectorised: "the next X of the same thread at or after t".

Keys (a thread id, a mutex address ...) are ranked densely and combined with
time into one sortable int64, so a whole batch of questions is one
searchsorted instead of a loop over keys.
"""

from __future__ import annotations

import numpy as np


class KeyedTimes:
    """Sorted (key, time) pairs that answer neighbour queries per key."""

    def __init__(self, key: np.ndarray, time: np.ndarray, extra_keys: np.ndarray | None = None):
        self.key = np.asarray(key)
        self.time = np.asarray(time, np.int64)
        allk = self.key if extra_keys is None else np.concatenate([self.key, np.asarray(extra_keys)])
        self.uniq = np.unique(allk)
        tmin = int(self.time.min()) if len(self.time) else 0
        tmax = int(self.time.max()) if len(self.time) else 0
        self.tmin = tmin
        # stored times map to 1 .. span-2, so queries outside the range clip to 0 or span-1
        self.span = tmax - tmin + 3
        if len(self.uniq) * self.span >= 2**62:
            raise OverflowError("time span x keys too large for a combined key")
        self.order = np.lexsort((self.time, self.key))
        self.combined = self._combine(self.key[self.order], self.time[self.order])

    def _combine(self, key: np.ndarray, time: np.ndarray) -> np.ndarray:
        rank = np.searchsorted(self.uniq, key)
        t = np.clip(np.asarray(time, np.int64) - self.tmin + 1, 0, self.span - 1)
        return rank.astype(np.int64) * self.span + t

    def _known(self, key: np.ndarray) -> np.ndarray:
        rank = np.searchsorted(self.uniq, key)
        return (rank < len(self.uniq)) & (self.uniq[np.minimum(rank, len(self.uniq) - 1)] == key)

    def next_at_or_after(self, key: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Index (into the original arrays) of the first entry with the same key and time >= t, or -1."""
        key = np.asarray(key)
        if not len(self.combined) or not len(key):
            return np.full(len(key), -1, np.int64)
        q = self._combine(key, time)
        pos = np.searchsorted(self.combined, q, "left")
        ok = self._known(key) & (pos < len(self.combined))
        pos_c = np.minimum(pos, len(self.combined) - 1)
        same = self.key[self.order[pos_c]] == key
        ok &= same
        return np.where(ok, self.order[pos_c], -1)

    def last_at_or_before(self, key: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Index of the last entry with the same key and time <= t, or -1."""
        key = np.asarray(key)
        if not len(self.combined) or not len(key):
            return np.full(len(key), -1, np.int64)
        q = self._combine(key, time)
        pos = np.searchsorted(self.combined, q, "right") - 1
        ok = self._known(key) & (pos >= 0)
        pos_c = np.maximum(pos, 0)
        ok &= self.key[self.order[pos_c]] == key
        return np.where(ok, self.order[pos_c], -1)
