"""Two runs compared (`osvtrace diff A B`): per lock, thread, waiting stack, packet path and
tracepoint, the distributions of what each run measured, and which moved beyond noise.

Keys must mean the same thing in both runs, so they are names, not addresses: a mutex by its
static object (`slots[1].m`; a heap mutex by its address, which only matches when the runs
allocated alike), a thread by its name, a stack by its named caller-first path. A change is
reported when a rank test says the two samples differ (Mann-Whitney U, Bonferroni-corrected
over every comparison made) *and* the median or p99 moved by at least --min-change: a big
trace makes any difference significant, a small effect is not worth a line. Tracepoint rates
are compared as Poisson counts per second of trace.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from osvtrace.model import Model
from osvtrace.reports.calltree import name_paths

# At most this many values per side go into the rank test (a seeded sample): its p-value
# needs no more to see a shift of the size we report, and 10 M-row tables stay fast.
TEST_SAMPLE = 50_000
UNNAMED = "(mutexes known by address only)"  # the pooled heap mutexes of a run
MIN_COUNT = 8  # fewer values on either side: the distribution is shown, never called a change

# A measure of one run: (labels, code per value, values in ns): value i belongs to labels[code[i]].
Grouped = tuple[list[str], np.ndarray, np.ndarray]
Extract = Callable[[Model], Grouped]
NOTHING: Grouped = ([], np.empty(0, np.int64), np.empty(0, np.int64))


def _lock_labels(model: Model, addrs: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Mutex keys: the static object's name (same in both runs), else the address; one
    lookup per distinct mutex."""
    uniq, inv = np.unique(addrs, return_inverse=True)
    named = np.asarray(model.object_names(uniq)).tolist() if len(uniq) else []
    return [n or f"{int(a):#x}" for n, a in zip(named, uniq.tolist())], inv


def _thread_labels(model: Model, tids: np.ndarray) -> tuple[list[str], np.ndarray]:
    uniq, inv = np.unique(tids, return_inverse=True)
    return [model.trace.thread_name(int(t)) for t in uniq.tolist()], inv


def _lock_wait(m: Model) -> Grouped:
    w = m.mutex_wait
    ok = w["complete"]
    return (*_lock_labels(m, w["mutex"][ok]), w["dur"][ok])


def _lock_hold(m: Model) -> Grouped:
    h = m.mutex_hold
    ok = h["complete"]
    return (*_lock_labels(m, h["mutex"][ok]), h["dur"][ok])


def _wakeup(m: Model) -> Grouped:
    w = m.wakeup
    ok = w["latency"] >= 0
    return (*_thread_labels(m, w["wakee"][ok]), w["latency"][ok])


def _run_slice(m: Model) -> Grouped:
    s = m.sched_slice
    ok = s["clipped"] == 0
    return (*_thread_labels(m, s["tid"][ok]), s["dur"][ok])


def _stack_wait(m: Model) -> Grouped:
    """Mutex waits by the waiter's named stack (records taken with backtraces)."""
    w = m.mutex_wait
    ok = w["complete"]
    ev, dur = w["event"][ok], w["dur"][ok]
    if not len(ev):
        return NOTHING
    sid = m.stacks.ids(ev)
    has = sid >= 0
    if not has.any():
        return NOTHING
    named = name_paths(m, sid[has], caller_first=True)
    names = [str(x) for x in named.names.tolist()]
    text = [";".join(names[i] for i in row if i >= 0) for row in named.paths.tolist()]
    return text, named.rows(sid[has]), dur[has]


def _packet_latency(m: Model) -> Grouped:
    p = m.packet_flow
    ok = (p["latency"] >= 0) & ~p["dropped"]
    return ["all packets"], np.zeros(int(ok.sum()), np.int64), p["latency"][ok]


# (kind, metric, what it measures): the distributions compared, in the order shown on a tie
MEASURES: tuple[tuple[str, str, Extract], ...] = (
    ("lock", "wait", _lock_wait),
    ("lock", "hold", _lock_hold),
    ("thread", "wakeup latency", _wakeup),
    ("thread", "run slice", _run_slice),
    ("stack", "mutex wait", _stack_wait),
    ("packet", "latency", _packet_latency),
)


@dataclass
class Side:
    """One key's distribution in one run."""

    n: int = 0
    p50: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    total: float = 0.0

    q: np.ndarray = field(default_factory=lambda: np.zeros(0))  # percentiles 0..100 (the page draws them)

    @staticmethod
    def of(v: np.ndarray) -> "Side":
        if not len(v):
            return Side()
        q = np.percentile(v, np.arange(101))  # one sort gives p50, p99 and the curve
        return Side(len(v), float(q[50]), float(q[99]), float(q[100]), float(v.sum()), q)

    def as_dict(self) -> dict:
        return {"n": self.n, "p50": self.p50, "p99": self.p99, "max": self.max, "total": self.total}


@dataclass
class Change:
    kind: str  # lock, thread, stack, packet, tracepoint
    key: str
    metric: str  # wait, hold, wakeup latency, run slice, mutex wait, latency, rate
    unit: str  # ns or /s
    a: Side
    b: Side
    p_value: float  # NaN when not tested (too few values, or on one side only)
    significant: bool
    ratio_p50: float  # b / a (inf: only in b; 0: only in a)
    ratio_p99: float

    @property
    def effect(self) -> float:
        """How far it moved: the larger of |log2| of the two ratios (a doubling is 1)."""
        def l(r: float) -> float:
            return abs(math.log2(r)) if 0 < r < math.inf else 10.0
        return max(l(self.ratio_p50), l(self.ratio_p99))

    def as_dict(self) -> dict:
        return {"kind": self.kind, "key": self.key, "metric": self.metric, "unit": self.unit,
                "a": self.a.as_dict(), "b": self.b.as_dict(), "p_value": self.p_value, "significant": self.significant,
                "ratio_p50": self.ratio_p50, "ratio_p99": self.ratio_p99, "effect": self.effect}


@dataclass
class Diff:
    a: str
    b: str
    changes: list[Change]  # significant first, larger effect first
    tests: int  # comparisons made (the Bonferroni divisor)
    alpha: float
    min_change: float
    notes: list[str] = field(default_factory=list)

    @property
    def significant(self) -> list[Change]:
        return [c for c in self.changes if c.significant]


def _ratio(b: float, a: float) -> float:
    if a == 0:
        return 1.0 if b == 0 else math.inf
    return b / a


def _rank_test(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
    from scipy.stats import mannwhitneyu

    if len(x) > TEST_SAMPLE:
        x = rng.choice(x, TEST_SAMPLE, replace=False)
    if len(y) > TEST_SAMPLE:
        y = rng.choice(y, TEST_SAMPLE, replace=False)
    if np.array_equal(np.sort(x), np.sort(y)):
        return 1.0  # the same sample (a run against itself): no test says otherwise
    return float(mannwhitneyu(x, y, alternative="two-sided", method="asymptotic").pvalue)


def _groups(g: Grouped) -> dict[str, np.ndarray]:
    """Values per label (labels that name the same thing, e.g. two threads of one name, merge)."""
    labels, code, values = g
    if not len(code):
        return {}
    order = np.argsort(code, kind="stable")
    bounds = np.searchsorted(code[order], np.arange(len(labels) + 1))
    v = values[order].astype(np.int64)
    out: dict[str, list[np.ndarray]] = {}
    for i, k in enumerate(labels):
        if bounds[i + 1] > bounds[i]:
            out.setdefault(str(k), []).append(v[bounds[i]:bounds[i + 1]])
    return {k: parts[0] if len(parts) == 1 else np.concatenate(parts) for k, parts in out.items()}


def _rates(m: Model) -> tuple[dict[str, int], float]:
    """Records per tracepoint and the trace's length in seconds."""
    ev = m.trace.events
    counts = np.bincount(ev.tp) if len(ev) else np.zeros(0, np.int64)
    names = {tp.id: tp.name for tp in m.trace.catalog.tracepoints}
    lo, hi = m.trace.span_ns
    return {names.get(i, f"tp{i}"): int(c) for i, c in enumerate(counts.tolist()) if c}, max(hi - lo, 1) / 1e9


def diff(a: Model, b: Model, *, alpha: float = 0.01, min_change: float = 0.25,
         kinds: tuple[str, ...] = ("lock", "thread", "stack", "packet", "tracepoint")) -> Diff:
    """Compare run b against run a (b's values over a's in the ratios)."""
    rng = np.random.default_rng(0)
    rows: list[tuple[str, str, str, np.ndarray, np.ndarray]] = []
    measures = [mm for mm in MEASURES if mm[0] in kinds]

    def measure_all(m: Model) -> list[dict[str, np.ndarray]]:
        return [_groups(extract(m)) for _, _, extract in measures]

    # The two runs' tables are built at once, one thread each (the work is numpy sorts and
    # scans, which release the GIL): on two cores the diff costs about one trace's tables.
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(measure_all, a)
        got_b = measure_all(b) if b is not a else None
        got_a = fut.result()
    got_b = got_b if got_b is not None else got_a
    for (kind, metric, _), ga, gb in zip(measures, got_a, got_b):
        ga, gb = dict(ga), dict(gb)
        if kind == "lock":
            # heap mutexes have no name to match them by across runs: compared pooled as well
            pa, pb = [v for k, v in ga.items() if k.startswith("0x")], [v for k, v in gb.items() if k.startswith("0x")]
            if pa and pb:
                ga[UNNAMED], gb[UNNAMED] = np.concatenate(pa), np.concatenate(pb)
        empty = np.empty(0, np.int64)
        for key in sorted(set(ga) | set(gb)):
            rows.append((kind, key, metric, ga.get(key, empty), gb.get(key, empty)))
    tested = [r for r in rows if len(r[3]) >= MIN_COUNT and len(r[4]) >= MIN_COUNT]
    rate_rows = []
    if "tracepoint" in kinds:
        (ca, sa), (cb, sb) = _rates(a), _rates(b)
        rate_rows = [(k, ca.get(k, 0), cb.get(k, 0)) for k in sorted(set(ca) | set(cb))]
    tests = max(len(tested) + sum(1 for _, x, y in rate_rows if x and y), 1)
    level = alpha / tests
    step = math.log2(1 + min_change)
    changes: list[Change] = []
    for kind, key, metric, x, y in rows:
        sa_, sb_ = Side.of(x), Side.of(y)
        r50, r99 = _ratio(sb_.p50, sa_.p50), _ratio(sb_.p99, sa_.p99)
        if not len(x) or not len(y):
            r50 = r99 = math.inf if not len(x) else 0.0
        p = _rank_test(x, y, rng) if len(x) >= MIN_COUNT and len(y) >= MIN_COUNT else math.nan
        c = Change(kind, key, metric, "ns", sa_, sb_, p, False, r50, r99)
        big = c.effect >= step
        # a key on one side only is a change when it is not a handful of values, and when it
        # is a name: an address seen in one run only is a heap object the other run placed elsewhere
        one_side = (not len(x) or not len(y)) and max(len(x), len(y)) >= MIN_COUNT and not key.startswith("0x")
        c.significant = (p < level and big) or one_side
        changes.append(c)
    for key, x, y in rate_rows:
        ra, rb = x / sa, y / sb
        r = _ratio(rb, ra) if x and y else (math.inf if not x else 0.0)
        if x and y:
            z = math.log(r) / math.sqrt(1 / x + 1 / y)  # log rate ratio of two Poisson counts
            p = math.erfc(abs(z) / math.sqrt(2))
        else:
            p = math.nan
        c = Change("tracepoint", key, "rate", "/s", Side(x, ra, ra, ra, x), Side(y, rb, rb, rb, y), p, False, r, r)
        c.significant = (p < level and c.effect >= step) or ((not x or not y) and max(x, y) >= MIN_COUNT)
        changes.append(c)
    # measured shifts first (largest first), then what is new or gone (most values first): a
    # key that one run lacks is a change, but rarely the one being looked for
    changes.sort(key=lambda c: (not c.significant, not (c.a.n and c.b.n),
                                -c.effect if c.a.n and c.b.n else -max(c.a.n, c.b.n), c.kind, c.key, c.metric))
    notes = []
    lone = sorted({c.key for c in changes if c.kind == "lock" and c.key.startswith("0x") and (not c.a.n or not c.b.n)})
    if lone:
        notes.append(f"{len(lone)} mutex(es) known only by address appear in one run only (heap objects have no name "
                     f"to match them by): compared pooled as {UNNAMED!r}; --all lists them")
    if not any(k == "stack" for k, *_ in rows) and "stack" in kinds:
        notes.append("no stacks compared: record with --tracebt mutex_lock_wait (or --backtrace) for per-stack waits")
    return Diff(str(a.trace.path), str(b.trace.path), changes, tests, alpha, min_change, notes)


def _fmt(v: float, unit: str) -> str:
    from osvtrace.model.filters import format_duration

    if unit == "ns":
        return format_duration(int(v))
    return f"{v:,.1f}{unit}"


def _times(r: float) -> str:
    if r == math.inf:
        return "new"
    if r == 0:
        return "gone"
    return f"{r:.2f}x"


def render(d: Diff, limit: int = 30, show_all: bool = False) -> str:
    """The changes as text: significant ones (or all with show_all), largest first."""
    rows = d.changes if show_all else d.significant
    head = (f"A {d.a}\nB {d.b}\n{len(d.significant)} significant change(s) of {len(d.changes)} compared "
            f"(rank test p < {d.alpha:g}/{d.tests}, and the median or p99 moved >= {d.min_change:.0%})")
    if not rows:
        return head + "\nno change beyond noise" + "".join(f"\nnote: {n}" for n in d.notes)
    w = min(max(len(c.key) for c in rows[:limit]), 48)
    out = [head, "", f"{'kind':<10} {'key':<{w}} {'metric':<15} {'n A':>8} {'n B':>8} {'p50 A':>10} {'p50 B':>10} "
                     f"{'p50':>7} {'p99 A':>10} {'p99 B':>10} {'p99':>7} {'p':>8}"]
    for c in rows[:limit]:
        key = c.key if len(c.key) <= w else "…" + c.key[-(w - 1):]
        out.append(f"{c.kind:<10} {key:<{w}} {c.metric:<15} {c.a.n:>8,} {c.b.n:>8,} {_fmt(c.a.p50, c.unit):>10} "
                   f"{_fmt(c.b.p50, c.unit):>10} {_times(c.ratio_p50):>7} {_fmt(c.a.p99, c.unit):>10} "
                   f"{_fmt(c.b.p99, c.unit):>10} {_times(c.ratio_p99):>7} "
                   f"{'-' if math.isnan(c.p_value) else format(c.p_value, '.1e'):>8}")
    if len(rows) > limit:
        out.append(f"... {len(rows) - limit} more (--limit, --json)")
    out += [f"note: {n}" for n in d.notes]
    return "\n".join(out)
