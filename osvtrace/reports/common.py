"""What every report shares: a result shape, filtering model tables, duration statistics,
and rendering as text, CSV or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from osvtrace.model import Model
from osvtrace.model.filters import Filter, thread_ids
from osvtrace.model.table import Table

PERCENTILES = (50, 90, 99)


@dataclass
class Options:
    """Report options beyond the event filter."""

    min_duration: int = 0  # ns
    limit: int | None = None
    buckets: int = 60
    more: dict[str, Any] = field(default_factory=dict)  # a report's own options (Opt.key -> value)


@dataclass
class Report:
    """A report's result: one table of rows (columns of equal length) plus context lines."""

    title: str
    columns: dict[str, np.ndarray]
    kinds: dict[str, str] = field(default_factory=dict)  # column -> "ns" | "time" | "pct" | "addr" | "text"
    # "addr": a data address (mutex, wait object ...); name_columns names it in `names`
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # more data for --json
    picture: list[str] = field(default_factory=list)  # text-mode picture lines (sparklines ...)
    # a tree: the rows are its nodes parents first, with `level` and `parent` (row index, -1 for
    # a root) columns; this names the column holding each node's label. Text draws the tree,
    # --json adds it nested.
    tree: str = ""
    names: dict[str, np.ndarray] = field(default_factory=dict)  # "addr" column -> its names ('' unknown)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def machine_columns(self) -> dict[str, np.ndarray]:
        """The columns for JSON and CSV: each named address column followed by COLUMN_name."""
        out: dict[str, np.ndarray] = {}
        for k, v in self.columns.items():
            out[k] = v
            if k in self.names:
                out[f"{k}_name"] = self.names[k]
        return out

    def records(self) -> list[dict[str, Any]]:
        cols = {k: v.tolist() for k, v in self.machine_columns().items()}
        return [{k: cols[k][i] for k in cols} for i in range(len(self))]


def name_columns(model: Model, r: Report) -> None:
    """Name every data-address column of a report (kind "addr") through the model's symbols:
    the one place a report's addresses get names. The symbols' warnings (no ELF for this
    trace ...) become notes when there was an address to name."""
    cols = [c for c, k in r.kinds.items() if k == "addr" and c in r.columns]
    if not cols or not len(r) or not any(r.columns[c].any() for c in cols):
        return
    for c in cols:
        r.names[c] = model.object_names(r.columns[c])
    r.notes += [f"names: {w}" for w in model.symbols.warnings]


def thread_names(model: Model, tids: np.ndarray) -> np.ndarray:
    """Names for a column of thread ids: one lookup per distinct thread, not per row."""
    uniq, inv = np.unique(np.asarray(tids), return_inverse=True)
    return np.array([model.trace.thread_name(int(t)) for t in uniq] or [""], object)[inv] if len(uniq) \
        else np.empty(0, object)


def window(flt: Filter | None) -> tuple[int | None, int | None]:
    return (flt.since, flt.until) if flt else (None, None)


def filter_table(model: Model, t: Table, flt: Filter | None, *, time_col: str = "start", dur_col: str | None = "dur",
                 tid_col: str = "tid", opts: Options | None = None) -> np.ndarray:
    """Mask of a table's rows passing the filter: rows overlapping the time window, on the
    CPUs and threads asked for, at least --min-duration long."""
    n = len(t)
    m = np.ones(n, bool)
    if flt is not None:
        if flt.since is not None or flt.until is not None:
            start = t[time_col]
            end = start + t[dur_col] if dur_col else start
            if flt.since is not None:
                m &= end >= flt.since if dur_col else start >= flt.since
            if flt.until is not None:
                m &= start < flt.until
        if flt.cpus and "cpu" in t.columns:
            m &= np.isin(t["cpu"], np.array(flt.cpus))
        if flt.threads and tid_col in t.columns:
            m &= np.isin(t[tid_col], thread_ids(model.trace, flt.threads))
    if opts is not None and opts.min_duration and dur_col:
        m &= t[dur_col] >= opts.min_duration
    return m


def clip(start: np.ndarray, dur: np.ndarray, flt: Filter | None) -> np.ndarray:
    """Durations cut to the filter's time window (for totals inside a window)."""
    lo, hi = window(flt)
    s = start if lo is None else np.maximum(start, lo)
    e = start + dur if hi is None else np.minimum(start + dur, hi)
    return np.maximum(e - s, 0)


def group_stats(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per distinct key: count, total, mean, p50, p90, p99, max of values (sorted once)."""
    if not len(keys):
        empty = np.empty(0, np.int64)
        return keys[:0], {k: empty for k in ("count", "total", "mean", *[f"p{p}" for p in PERCENTILES], "max")}
    order = np.lexsort((values, keys))
    k, v = keys[order], values[order].astype(np.int64)
    starts = np.concatenate(([0], np.nonzero(k[1:] != k[:-1])[0] + 1))
    ends = np.concatenate((starts[1:], [len(k)]))
    count = ends - starts
    total = np.add.reduceat(v, starts)
    out = {"count": count, "total": total, "mean": total // count}
    for p in PERCENTILES:
        # nearest-rank percentile inside each sorted group
        out[f"p{p}"] = v[starts + np.ceil(count * p / 100).astype(np.int64) - 1]
    out["max"] = v[ends - 1]
    return k[starts], out


def stats(values: np.ndarray) -> dict[str, int]:
    """count, total, mean, p50, p90, p99, max of one set of durations."""
    _, s = group_stats(np.zeros(len(values), np.int8), values)
    return {k: int(v[0]) if len(v) else 0 for k, v in s.items()}


SPARK = " ▁▂▃▄▅▆▇█"


def sparkline(values: np.ndarray, top: float = 1.0) -> str:
    """One character per value, from a blank (0) to a full block (top)."""
    v = np.clip(np.asarray(values, float) / (top or 1.0), 0, 1)
    return "".join(SPARK[int(round(x * (len(SPARK) - 1)))] for x in v)
