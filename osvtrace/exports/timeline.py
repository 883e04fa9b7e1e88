"""The timeline the viewer formats share (Perfetto, Chrome JSON): tracks, slices, instants, flows.

Columnar: a few numpy arrays per kind of item, no Python object per event.
osvtrace.exports.timeline_build makes one from the model's tables. Tracks:

- one per CPU: what ran there (sched_slice), wake-ups, packet stages, lost records;
- one per thread: its states (thread_state) and its markers;
- one per mutex: who held it (mutex_hold) and its hand-offs, with a child track per
  thread that waited for it (mutex_wait).

Flows (arrows): wake-up -> the wakee's next slice, hand-off -> the receiver's hold,
and each packet through its stages (rx, classify, push, pop, tx).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from osvtrace.exports.common import Selection

# argument names and how to show them; an item carries at most one argument
UINT, PTR = 1, 2
ARGS: tuple[tuple[str, int], ...] = (
    ("tid", UINT), ("cpu", UINT), ("blocked_on", PTR), ("handed_by", UINT), ("wakee", UINT),
    ("to_tid", UINT), ("packet", UINT), ("count", UINT), ("value", UINT))
ARG = {name: i for i, (name, _kind) in enumerate(ARGS)}
ARG_KIND = np.array([k for _n, k in ARGS], np.uint8)

# flow roles, set by finish(): the first endpoint starts a flow, the last ends it
FLOW_NONE, FLOW_START, FLOW_STEP, FLOW_END = 0, 1, 2, 3


@dataclass
class Track:
    uuid: int
    name: str
    kind: str  # process, group, cpu, thread, mutex, waits (a mutex's waiter)
    parent: int = 0
    key: int = -1  # cpu number, thread id or mutex address
    rank: int = 0  # order among siblings


@dataclass
class Items:
    """Slices (dur >= 0) or instants (dur == -1) of one kind, as columns."""

    what: str
    track: np.ndarray  # int64: Track.uuid
    ts: np.ndarray  # int64 ns
    dur: np.ndarray  # int64 ns, -1 for instants
    name: np.ndarray  # int32: index into Timeline.names
    arg: np.ndarray  # uint64 value of the argument
    arg_name: np.ndarray  # int8: index into ARGS, -1 for none
    flow: np.ndarray  # uint64 flow id, 0 for none
    flow_stage: np.ndarray  # uint8: order of endpoints at equal times (source before destination)
    flow_kind: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def instant(self) -> bool:
        return bool(len(self.dur)) and bool(self.dur[0] < 0)

    def take(self, m: np.ndarray) -> "Items":
        return Items(self.what, self.track[m], self.ts[m], self.dur[m], self.name[m], self.arg[m], self.arg_name[m],
                     self.flow[m], self.flow_stage[m], self.flow_kind[m] if len(self.flow_kind) else self.flow_kind)


def items(what: str, track: np.ndarray, ts: np.ndarray, name: np.ndarray, *, dur: np.ndarray | None = None,
          arg: np.ndarray | None = None, arg_name: np.ndarray | int = -1, flow: np.ndarray | None = None,
          flow_stage: int = 0) -> Items:
    n = len(ts)
    return Items(what, np.asarray(track, np.int64), np.asarray(ts, np.int64),
                 np.full(n, -1, np.int64) if dur is None else np.asarray(dur, np.int64),
                 np.asarray(name, np.int32),
                 np.zeros(n, np.uint64) if arg is None else np.asarray(arg).astype(np.uint64),
                 np.broadcast_to(np.asarray(arg_name, np.int8), (n,)).copy(),
                 np.zeros(n, np.uint64) if flow is None else np.asarray(flow, np.uint64),
                 np.full(n, flow_stage, np.uint8))


def factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys, index of each key among them), like np.unique(return_inverse=True)
    but in linear time for small non-negative integers (CPUs, thread ids, states)."""
    keys = np.asarray(keys)
    if len(keys) and keys.dtype.kind in "iu" and int(keys.min()) >= 0 and int(keys.max()) < 1 << 22:
        present = np.bincount(keys.astype(np.intp)) > 0
        uniq = np.flatnonzero(present)
        lut = np.zeros(len(present), np.int64)
        lut[uniq] = np.arange(len(uniq))
        return uniq.astype(keys.dtype), lut[keys]
    if len(keys) > 1 << 16:
        # few distinct values among many rows (mutex addresses): guess them from a sample,
        # confirm with one binary search per row, which is much cheaper than a full sort
        guess = np.unique(keys[:: len(keys) >> 14])
        pos = np.minimum(np.searchsorted(guess, keys), len(guess) - 1)
        if np.array_equal(guess[pos], keys):
            return guess, pos
    return np.unique(keys, return_inverse=True)


class Names:
    """Interned strings: each distinct name once (Perfetto's interned data, Chrome's escapes)."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._ids: dict[str, int] = {}

    def id(self, s: str) -> int:
        i = self._ids.get(s)
        if i is None:
            i = self._ids[s] = len(self.strings)
            self.strings.append(s)
        return i

    def map(self, keys: np.ndarray, text: Callable[[int], str]) -> np.ndarray:
        """Name ids for a column of keys: ``text`` runs once per distinct key."""
        if not len(keys):
            return np.empty(0, np.int32)
        uniq, inv = factorize(keys)
        ids = np.array([self.id(text(int(k))) for k in uniq.tolist()], np.int32)
        return ids[inv]


class Tracks:
    """Tracks created on first use, with small sequential uuids (short varints in Perfetto)."""

    def __init__(self) -> None:
        self.list: list[Track] = []
        self._by: dict[tuple[str, int], Track] = {}

    def add(self, name: str, kind: str, key: int = -1, parent: int = 0, rank: int = 0) -> Track:
        t = self._by.get((kind, key))
        if t is None:
            t = Track(len(self.list) + 1, name, kind, parent, key, rank)
            self.list.append(t)
            self._by[(kind, key)] = t
        return t

    def get(self, kind: str, key: int) -> Track | None:
        return self._by.get((kind, key))

    def map(self, kind: str, keys: np.ndarray, make: Callable[[int], Track | None]) -> np.ndarray:
        """uuids for a column of keys (0 where ``make`` declines); ``make`` runs per distinct key."""
        if not len(keys):
            return np.empty(0, np.int64)
        uniq, inv = factorize(keys)
        out = []
        for k in uniq.tolist():
            t = self._by.get((kind, int(k))) or make(int(k))
            out.append(t.uuid if t else 0)
        return np.array(out, np.int64)[inv]


@dataclass
class Timeline:
    title: str
    tracks: list[Track]
    names: list[str]
    slices: list[Items]
    instants: list[Items]

    def count(self) -> dict[str, int]:
        out = {"tracks": len(self.tracks), "slices": sum(len(s) for s in self.slices),
               "instants": sum(len(i) for i in self.instants)}
        # every flow has exactly one starting endpoint (finish() drops the rest)
        out["flows"] = sum(int(np.count_nonzero(p.flow_kind == FLOW_START)) for p in self.slices + self.instants)
        return out


def _no_overlap(p: Items) -> None:
    """Clip each slice at the next one's start on its track: a viewer cannot draw slices
    that overlap without nesting (they only happen with damaged or clipped data)."""
    if len(p) < 2:
        return
    order = _track_time_order(p.track, p.ts)
    track = p.track if order is None else p.track[order]
    ts = p.ts if order is None else p.ts[order]
    end = ts + (p.dur if order is None else p.dur[order])
    nxt = np.empty(len(ts), np.int64)
    nxt[:-1] = ts[1:]
    nxt[-1] = end[-1]
    same = np.zeros(len(ts), bool)
    same[:-1] = track[1:] == track[:-1]
    over = same & (nxt < end)
    if over.any():
        fix = np.nonzero(over)[0]
        rows = fix if order is None else order[fix]
        p.dur[rows] = nxt[fix] - ts[fix]


def _track_time_order(track: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """A (track, time) order of the rows, or None when they are in that order already."""
    dt, dk = np.diff(ts), np.diff(track)
    if ((dk > 0) | ((dk == 0) & (dt >= 0))).all():
        return None
    o = np.argsort(ts, kind="stable") if not (dt >= 0).all() else np.arange(len(ts))
    k = track[o]
    # few tracks: a radix sort on 16 bits keeps the time order inside each track
    return o[np.argsort(k.astype(np.uint16) if int(k.max()) < 1 << 16 else k, kind="stable")]


def _flow_roles(parts: list[Items], nflows: int) -> None:
    """Give each flow endpoint its role: the first (in time, then stage) starts the flow,
    the last ends it, any between continue it. Flows left with one endpoint (the other
    was filtered out) are dropped. Flow ids are dense (1..nflows), so per-flow minima
    and maxima are plain indexed reductions, no sort."""
    big = np.iinfo(np.int64).max
    lo = np.full(nflows + 1, big, np.int64)
    hi = np.full(nflows + 1, -1, np.int64)
    count = np.zeros(nflows + 1, np.int64)
    keys = []
    for p in parts:
        w = np.nonzero(p.flow)[0]
        fid = p.flow[w].astype(np.intp)
        key = p.ts[w] * 8 + p.flow_stage[w]  # NOTE: stages < 8, times < 2**60
        np.minimum.at(lo, fid, key)
        np.maximum.at(hi, fid, key)
        count += np.bincount(fid, minlength=nflows + 1)
        keys.append((w, fid, key))
    for p, (w, fid, key) in zip(parts, keys):
        role = np.where(key == lo[fid], FLOW_START, np.where(key == hi[fid], FLOW_END, FLOW_STEP)).astype(np.uint8)
        role[count[fid] < 2] = FLOW_NONE
        p.flow_kind = np.zeros(len(p), np.uint8)
        p.flow_kind[w] = role
        p.flow[w[role == FLOW_NONE]] = 0


def finish(title: str, tracks: list[Track], names: list[str], slices: list[Items], instants: list[Items],
           sel: Selection, nflows: int) -> Timeline:
    """The timeline as viewers need it: items narrowed to the selection's window and to
    existing tracks, slices cut where they would overlap on a track, zero-length slices
    turned into instants, and each flow endpoint given its role."""
    out_slices, out_instants = [], list(instants)
    for p in slices:
        keep = p.track != 0
        if not sel.everything:
            m, start, dur = sel.spans(p.ts, p.dur)
            keep &= m
            p.ts, p.dur = start, dur
        if not keep.all():
            p = p.take(keep)
        _no_overlap(p)
        zero = p.dur <= 0  # a viewer cannot nest zero-length slices reliably: make them instants
        if zero.any():
            z = p.take(zero)
            z.dur = np.full(len(z), -1, np.int64)
            out_instants.append(z)
            p = p.take(~zero)
        out_slices.append(p)
    out_instants = [i if (i.track != 0).all() and sel.everything else i.take((i.track != 0) & sel.points(i.ts))
                    for i in out_instants]
    _flow_roles(out_slices + out_instants, nflows)
    return Timeline(title, tracks, names, out_slices, out_instants)


