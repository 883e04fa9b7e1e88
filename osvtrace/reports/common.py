"""What every report shares: a result shape, filtering model tables, duration statistics,
and rendering as text, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from osvtrace.model import Model
from osvtrace.model.filters import Filter, format_duration, format_ns, thread_ids
from osvtrace.model.table import Table

PERCENTILES = (50, 90, 99)


@dataclass
class Options:
    """Report options beyond the event filter."""

    min_duration: int = 0  # ns
    limit: int | None = None
    buckets: int = 60


@dataclass
class Report:
    """A report's result: one table of rows (columns of equal length) plus context lines."""

    title: str
    columns: dict[str, np.ndarray]
    kinds: dict[str, str] = field(default_factory=dict)  # column -> "ns" | "time" | "pct" | "addr" | "text"
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # more data for --json
    picture: list[str] = field(default_factory=list)  # text-mode picture lines (sparklines ...)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def records(self) -> list[dict[str, Any]]:
        cols = {k: v.tolist() for k, v in self.columns.items()}
        return [{k: cols[k][i] for k in cols} for i in range(len(self))]


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


# ---------------------------------------------------------------- rendering

def _cell(value: Any, kind: str, grouping: bool = True) -> str:
    if kind == "ns":
        return format_duration(value) if value >= 0 else "-"
    if kind == "time":
        return format_ns(value) if value >= 0 else "-"
    if kind == "pct":
        return f"{value:.1f}%"
    if kind == "addr":
        return f"{int(value):#x}"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}" if grouping else str(value)
    return str(value)


def render_text(r: Report, limit: int | None = None, grouping: bool = True) -> str:
    out = [r.title, ""] if r.title else []
    out += r.picture + ([""] if r.picture else [])
    n = len(r) if limit is None else min(limit, len(r))
    cols = list(r.columns)
    cells = [[_cell(v, r.kinds.get(c, ""), grouping) for v in r.columns[c][:n].tolist()] for c in cols]
    widths = [max([len(c)] + [len(x) for x in cs]) for c, cs in zip(cols, cells)]
    numeric = [r.columns[c].dtype.kind in "iuf" and r.kinds.get(c) != "addr" for c in cols]

    def line(items: list[str]) -> str:
        return "  ".join(x.rjust(w) if num else x.ljust(w) for x, w, num in zip(items, widths, numeric)).rstrip()

    out.append(line(cols))
    for i in range(n):
        out.append(line([cs[i] for cs in cells]))
    if n < len(r):
        out.append(f"... {len(r) - n:,} more rows (--limit, --json or --csv for all)")
    if not len(r):
        out.append("(no rows)")
    out += r.notes
    return "\n".join(out)


def render_csv(r: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(r.columns))
    cols = [r.columns[c].tolist() for c in r.columns]
    for i in range(len(r)):
        w.writerow([c[i] for c in cols])
    return buf.getvalue()


def render_json(r: Report) -> str:
    """A report as one JSON object: {"title", "rows": [one object per row, keyed by column],
    "notes": [text lines], and the report's extra keys}."""
    return to_json({"title": r.title, "rows": r.records(), "notes": r.notes, **r.extra})


def to_json(data: Any, indent: int | None = 2) -> str:
    """The JSON every `--json` writes: numpy values as plain numbers and lists, decimals as
    numbers, NaN and infinities as null (json.dumps would write NaN, which is not JSON), so
    the text always parses as strict JSON."""
    return json.dumps(_plain(data), indent=indent, allow_nan=False, default=json_default)


def _plain(o: Any) -> Any:
    from decimal import Decimal

    if isinstance(o, Decimal):
        o = json_default(o)
    if isinstance(o, float):
        return o if o == o and o not in (float("inf"), float("-inf")) else None
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, (np.ndarray, np.generic)):
        return _plain(o.tolist())
    return o


def json_default(o: Any) -> Any:
    """json.dumps(default=...) for numpy scalars and arrays, DuckDB's decimals, blobs (hex),
    dates and times (ISO 8601) and, as text, anything else."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    from decimal import Decimal

    if isinstance(o, Decimal):  # DuckDB sums of int64 are decimals
        return int(o) if o == o.to_integral_value() else float(o)
    if isinstance(o, (bytes, bytearray, memoryview)):  # blobs (net_packet's data): hex, as `report list --json`
        return bytes(o).hex()
    import datetime

    if isinstance(o, (datetime.datetime, datetime.date, datetime.time)):  # SQL timestamps: ISO 8601 text
        return o.isoformat()
    if isinstance(o, datetime.timedelta):
        return o.total_seconds()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)  # anything else a query can return (UUIDs ...): its text, never a traceback


ReportFn = Callable[[Model, Filter, Options], Report]
REGISTRY: dict[str, tuple[ReportFn, str]] = {}


def register(name: str, doc: str) -> Callable[[ReportFn], ReportFn]:
    """Register a report under `osvtrace report NAME` (the way a plugin would)."""

    def deco(fn: ReportFn) -> ReportFn:
        REGISTRY[name] = (fn, doc)
        return fn

    return deco
