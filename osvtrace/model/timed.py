"""Timed pairs: one row per entry record matched with its exit record (X with X_ret or X_err,
and the pairs OSv's trace.py knows by name), and one row per record left without a partner.

Pairs are matched per key (a thread, or a CPU for the idle loop) as a stack would match them:
an exit closes the most recent open entry of its key, so a call nested inside another call of
the same tracepoint gets its own exit. Done with cumulative sums over columns, not a loop over
events. A record whose partner is missing (the trace began or ended mid-call, a CPU's ring
wrapped and lost the other half, a record was dropped) becomes a `timed_unmatched` row: never
an error, where trace.py stops with "Nested entry".

Which tracepoints pair up is data: PAIR_RULES (pairs by name) and EXIT_SUFFIXES (the naming
convention). They are applied to the names in the trace's own schema, so a kernel whose schema
declares X and X_ret (real OSv declares many) gets its pairs with no code here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from osvtrace.catalog.schema import Catalog
from osvtrace.format.trace import Trace
from osvtrace.model.search import last_match
from osvtrace.model.table import Column, Table, TableSpec, table


@dataclass(frozen=True)
class PairRule:
    """Records of `entry` end at the next record of one of `exits` with the same key."""

    entry: str
    exits: tuple[str, ...]
    key: str  # "tid": entry and exit come from the same thread; "cpu": from the same CPU


# Pairs whose names do not follow the convention, as OSv's trace.py (scripts/osv/prof.py) pairs them.
PAIR_RULES: tuple[PairRule, ...] = (
    PairRule("mutex_lock_wait", ("mutex_lock_wake",), "tid"),
    # per CPU, as trace.py does: the idle loop belongs to a CPU, and a kernel may not name
    # one idle thread per CPU in its records
    PairRule("sched_idle", ("sched_idle_ret",), "cpu"),
)
# The convention: X pairs with X_ret (it returned) and X_err (it failed), per thread.
EXIT_SUFFIXES: dict[str, bool] = {"_ret": True, "_err": False}  # suffix -> ok

TIMED = TableSpec("timed", "One row per timed pair: an entry record (X) matched with its exit (X_ret, X_err, or "
                  "a pair named in osvtrace.model.timed.PAIR_RULES) by the same thread (per CPU for sched_idle).", (
    Column("name", "object", "entry tracepoint (X)"),
    Column("tid", "uint32", "thread of the entry record", "tid"),
    Column("cpu", "uint16", "CPU of the entry record"),
    Column("end_cpu", "uint16", "CPU of the exit record (differs when the thread migrated)"),
    Column("start", "int64", "entry time", "ns"),
    Column("dur", "int64", "entry to exit", "ns"),
    Column("ok", "bool", "false when the exit was X_err"),
    Column("depth", "int32", "pairs of the same thread (CPU) open when this one began: 0 outermost"),
    Column("certain", "bool", "every CPU's ring had data for the whole pair (per-CPU pairs: its CPU's) and nothing "
           "was lost inside it; false: a record of this key may be missing in between, so the pair may join an "
           "entry with a later call's exit"),
    Column("event", "int64", "index of the entry record in events"),
))

TIMED_UNMATCHED = TableSpec("timed_unmatched", "One row per entry or exit record of a timed pair whose partner is "
                            "not in the trace.", (
    Column("name", "object", "entry tracepoint of the pair (X)"),
    Column("record", "object", "the record's own tracepoint (X, X_ret or X_err ...)"),
    Column("tid", "uint32", "thread", "tid"),
    Column("cpu", "uint16", "CPU"),
    Column("time", "int64", "time of the record", "ns"),
    Column("side", "object", "entry | exit"),
    Column("reason", "object", "open at end: an entry with no later record of its key (still running when the "
           "trace ended); exit missing: later records of its key exist, its exit is lost; entry missing: an exit "
           "whose entry is before the trace (or its CPU's ring) began, or lost"),
    Column("event", "int64", "index of the record in events"),
))


@dataclass
class Resolved:
    """The rules applied to one schema: per pair its name and key; per tracepoint id its role."""

    names: np.ndarray  # pair -> entry name (object)
    by_cpu: np.ndarray  # pair -> keyed by CPU (bool)
    ids: np.ndarray  # sorted tracepoint ids that take part
    pair: np.ndarray  # id -> pair index
    side: np.ndarray  # id -> +1 entry, -1 exit
    ok: np.ndarray  # id -> false for X_err
    record: np.ndarray  # id -> its own name (object)


def resolve(catalog: Catalog) -> Resolved:
    """Which of the schema's tracepoints pair with which. A name may have several ids (OSv
    keys tracepoints by address), so roles are given per id."""
    ids_of: dict[str, list[int]] = {}
    for tp in catalog.tracepoints:
        ids_of.setdefault(tp.name, []).append(tp.id)
    rules: list[tuple[str, list[tuple[str, bool]], str]] = []
    for r in PAIR_RULES:
        exits = [(x, not x.endswith("_err")) for x in r.exits if x in ids_of]
        if r.entry in ids_of and exits:
            rules.append((r.entry, exits, r.key))
    named = {n for e, xs, _ in rules for n in [e, *(x for x, _ in xs)]}
    for name in sorted(ids_of):
        exits = [(name + sfx, ok) for sfx, ok in EXIT_SUFFIXES.items() if name + sfx in ids_of]
        if exits and name not in named and not any(x in named for x, _ in exits):
            rules.append((name, exits, "tid"))
            named.update([name, *(x for x, _ in exits)])
    role: dict[int, tuple[int, int, bool, str]] = {}
    for p, (entry, exits, _) in enumerate(rules):
        for i in ids_of[entry]:
            role.setdefault(i, (p, 1, True, entry))
        for x, ok in exits:
            for i in ids_of[x]:
                role.setdefault(i, (p, -1, ok, x))  # an id keeps its first role: X_ret_ret stays an exit
    ids = np.array(sorted(role), np.int64)
    vals = [role[i] for i in ids.tolist()]
    return Resolved(names=np.array([e for e, _, _ in rules], object),
                    by_cpu=np.array([k == "cpu" for _, _, k in rules], bool), ids=ids,
                    pair=np.array([v[0] for v in vals], np.int64), side=np.array([v[1] for v in vals], np.int64),
                    ok=np.array([v[2] for v in vals], bool), record=np.array([v[3] for v in vals], object))


def _segment_starts(gid: np.ndarray) -> np.ndarray:
    first = np.ones(len(gid), bool)
    first[1:] = gid[1:] != gid[:-1]
    return first


def _group_cumsum(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Running sum restarting at each group's first element."""
    c = np.cumsum(values)
    start = np.maximum.accumulate(np.where(first, np.arange(len(values)), 0))
    return c - (c[start] - values[start])


def timed_tables(trace: Trace, lost: Table) -> tuple[Table, Table]:
    ev = trace.events
    rs = resolve(trace.catalog)
    if not len(rs.ids) or not len(ev):
        return TIMED.empty(), TIMED_UNMATCHED.empty()
    # a lookup table by tracepoint id: one gather over the events, not a search per event
    lookup = np.full(max(int(rs.ids[-1]), int(ev.tp.max())) + 1, -1, np.int64)
    lookup[rs.ids] = np.arange(len(rs.ids))
    r_all = lookup[ev.tp]
    sel = np.nonzero(r_all >= 0)[0]
    if not len(sel):
        return TIMED.empty(), TIMED_UNMATCHED.empty()
    r = r_all[sel]
    pair, side = rs.pair[r], rs.side[r]
    by_cpu = rs.by_cpu[pair]
    val = np.where(by_cpu, ev.cpu[sel].astype(np.int64), ev.tid[sel].astype(np.int64))
    gid = np.unique((pair << 33) | val, return_inverse=True)[1].reshape(-1)
    # group by key, time order inside (events are in time order, and the sort is stable)
    order = np.argsort(gid, kind="stable")
    sel, r, pair, side, by_cpu, gid = sel[order], r[order], pair[order], side[order], by_cpu[order], gid[order]
    n = len(sel)
    first = _segment_starts(gid)
    # The stack depth after each record is a running sum of +1 (entry) and -1 (exit), held at
    # zero by exits that find the stack empty: D = S - min(0, running min of S) per group.
    # Later groups are shifted far below earlier ones, so one running minimum serves all groups.
    s = _group_cumsum(side, first)
    big = 2 * n + 2
    low = np.minimum(np.minimum.accumulate(s - gid * big) + gid * big, 0)
    depth = s - low
    before = np.empty(n, np.int64)
    before[0] = 0
    before[1:] = depth[:-1]
    before[first] = 0
    is_entry = side > 0
    orphan_exit = ~is_entry & (before == 0)
    closes = ~is_entry & ~orphan_exit
    # An exit that takes the stack from L+1 to L closes the latest entry that took it from L to L+1.
    level = np.where(is_entry, before, depth)
    key = gid.astype(np.int64) * (n + 2) + level
    pos = np.arange(n)
    e_pos, x_pos = pos[is_entry], pos[closes]
    hit = last_match(key[x_pos], x_pos, key[e_pos], e_pos)
    matched = np.zeros(n, bool)
    ok_x = hit >= 0  # always, for a well-formed walk; kept defensive
    e_of = e_pos[hit[ok_x]]
    x_of = x_pos[ok_x]
    matched[e_of] = True
    matched[x_of] = True
    ei, xi = sel[e_of], sel[x_of]
    start, end = ev.time[ei], ev.time[xi]
    # order pairs by entry time (the event index is time order)
    o = np.argsort(ei, kind="stable")
    ei, xi, start, end = ei[o], xi[o], start[o], end[o]
    p_pair, p_cpu_key = pair[e_of][o], by_cpu[e_of][o]
    owner = np.where(p_cpu_key, ev.cpu[ei].astype(np.int64) | (1 << 40), ev.tid[ei].astype(np.int64))
    pairs = table(TIMED, name=rs.names[p_pair], tid=ev.tid[ei], cpu=ev.cpu[ei], end_cpu=ev.cpu[xi], start=start,
                  dur=end - start, ok=rs.ok[r[x_of]][o], depth=_depth(owner, ei, xi),
                  certain=_certain(trace, lost, start, end, ev.cpu[ei], p_cpu_key), event=ei)
    # the records left over
    left = np.nonzero(~matched)[0]
    last = np.ones(n, bool)
    last[:-1] = first[1:]
    reason = np.where(~is_entry[left], "entry missing",
                      np.where(last[left], "open at end", "exit missing")).astype(object)
    lo = np.argsort(sel[left], kind="stable")
    left, reason = left[lo], reason[lo]
    li = sel[left]
    unmatched = table(TIMED_UNMATCHED, name=rs.names[pair[left]], record=rs.record[r[left]], tid=ev.tid[li],
                      cpu=ev.cpu[li], time=ev.time[li],
                      side=np.where(is_entry[left], "entry", "exit").astype(object), reason=reason, event=li)
    return pairs, unmatched


def _depth(owner: np.ndarray, ei: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """For each pair, the pairs of the same owner open at its entry: a running count of
    entries (+1) and exits (-1) in event order, per owner."""
    n = len(ei)
    if not n:
        return np.empty(0, np.int32)
    own = np.unique(np.concatenate([owner, owner]), return_inverse=True)[1].reshape(-1).astype(np.int64)
    at = np.concatenate([ei, xi])
    step = np.concatenate([np.ones(n, np.int64), -np.ones(n, np.int64)])
    # one int64 key (owner, event index): a single sort instead of a two-key lexsort
    o = np.argsort(own * (int(at.max()) + 1) + at)
    run = _group_cumsum(step[o], _segment_starts(own[o]))
    out = np.empty(2 * n, np.int64)
    out[o] = run - step[o]  # open before this record
    return out[:n].astype(np.int32)


def _certain(trace: Trace, lost: Table, start: np.ndarray, end: np.ndarray, cpu: np.ndarray,
             by_cpu: np.ndarray) -> np.ndarray:
    """A pair is certain when no record of its key can be missing between its entry and exit:
    every CPU's ring already had data at the entry (the key's CPU, for per-CPU pairs) and no
    loss is known inside it. (A thread may run on any CPU, so one CPU whose ring wrapped later
    than the others makes every per-thread pair before that instant uncertain.)"""
    ev = trace.events
    ncpu = max(int(ev.cpu.max()) + 1 if len(ev) else 1, 1)
    firsts = np.full(ncpu, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(firsts, ev.cpu, ev.time)
    seen = firsts != np.iinfo(np.int64).max
    all_from = int(firsts[seen].max()) if seen.any() else 0
    ok = np.where(by_cpu, start >= firsts[np.minimum(cpu, ncpu - 1)], start >= all_from)
    known = lost["time"] >= 0
    lt, lc = lost["time"][known], lost["cpu"][known]
    if len(lt):
        srt = np.sort(lt)
        ok &= ~(~by_cpu & (np.searchsorted(srt, end, "right") > np.searchsorted(srt, start, "right")))
        for c in np.unique(lc).tolist():
            on = np.sort(lt[lc == c])
            m = by_cpu & (cpu == c)
            ok[m] &= ~(np.searchsorted(on, end[m], "right") > np.searchsorted(on, start[m], "right"))
    return ok
