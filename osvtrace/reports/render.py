"""The one renderer of reports: text tables, CSV, JSON (what every `--json` writes), and the
viewer's table JSON. The CLI, the shell and the viewer all render through here."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np

from osvtrace.model.filters import format_duration, format_ns
from osvtrace.reports.common import Report
from osvtrace.symbols import labels

VIEWER_ROWS = 1_000  # rows of a report the viewer's page gets (the total is sent too)


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
    if r.tree:
        return render_tree(r, limit)
    out = [r.title, ""] if r.title else []
    out += r.picture + ([""] if r.picture else [])
    n = len(r) if limit is None else min(limit, len(r))
    cols = list(r.columns)
    cells = [_shown(r, c, n) if c in r.names else [_cell(v, r.kinds.get(c, ""), grouping) for v in r.columns[c][:n].tolist()]
             for c in cols]
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


TREE_COLUMNS = ("level", "parent", "addr")  # structure, not shown beside each node


def render_tree(r: Report, limit: int | None = None) -> str:
    """A tree report as text: the node's numbers in aligned columns, then its label drawn in
    the tree. A node whose only child has the same numbers shares its lines (the child's
    label under it, as OSv's trace.py prints a chain of frames that always go together)."""
    out = [r.title, ""] if r.title else []
    n = len(r)
    cols = [c for c in r.columns if c not in TREE_COLUMNS and c != r.tree]
    parent = r.columns["parent"].tolist()
    labels = r.columns[r.tree].tolist()
    vals = list(zip(*(r.columns[c].tolist() for c in cols))) if cols else [()] * n
    children: list[list[int]] = [[] for _ in range(n)]
    for i, p in enumerate(parent):
        if p >= 0:
            children[p].append(i)
    cells = [[_cell(v, r.kinds.get(c, "")) for v, c in zip(row, cols)] for row in vals]
    widths = [max([len(c)] + [len(x[k]) for x in cells]) for k, c in enumerate(cols)]
    out.append("  ".join(c.rjust(w) for c, w in zip(cols, widths)) + "  " + r.tree)
    shown = 0
    # (node, prefix of its first line, prefix of its other lines, prefix of its children)
    todo = [(i, "", "") for i in reversed(range(n)) if parent[i] < 0]
    while todo and (limit is None or shown < limit):
        i, first, rest = todo.pop()
        lines = [first + labels[i]]
        while len(children[i]) == 1 and vals[children[i][0]] == vals[i]:  # a chain that always goes together
            i = children[i][0]
            lines.append(rest + labels[i])
        nums = "  ".join(x.rjust(w) for x, w in zip(cells[i], widths))
        out.append(nums + "  " + lines[0])
        out += [" " * len(nums) + "  " + ln for ln in lines[1:]]
        shown += 1
        kids = children[i]
        for k, c in reversed(list(enumerate(kids))):
            last = k == len(kids) - 1
            todo.append((c, rest + ("\\-- " if last else "|-- "), rest + ("    " if last else "|   ")))
    if todo:
        out.append(f"... more nodes (--limit, --max-levels, --min-count, or --json for all {n:,})")
    if not n:
        out.append("(no stacks)")
    out += r.notes
    return "\n".join(out)


def tree_json(r: Report) -> list[dict[str, Any]]:
    """A tree report's nodes nested: each {label column: ..., the other columns, children: [...]}."""
    recs = r.records()
    for x in recs:
        x["children"] = []
    roots = []
    for x in recs:
        p = x.pop("parent")
        x.pop("level")
        (roots if p < 0 else recs[p]["children"]).append(x)
    return roots


def _shown(r: Report, c: str, n: int) -> list[str]:
    """A named address column's first n cells: `name (0xADDR)`, or `0xADDR`."""
    return labels(r.names[c][:n], r.columns[c][:n]).tolist()


def render_csv(r: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    mc = r.machine_columns()
    w.writerow(list(mc))
    cols = [v.tolist() for v in mc.values()]
    for i in range(len(r)):
        w.writerow([c[i] for c in cols])
    return buf.getvalue()


def render_json(r: Report) -> str:
    """A report as one JSON object: {"title", "rows": [one object per row, keyed by column],
    "notes": [text lines], and the report's extra keys}."""
    tree = {"tree": tree_json(r)} if r.tree else {}
    return to_json({"title": r.title, "rows": r.records(), "notes": r.notes, **r.extra, **tree})


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




def viewer_json(r: Report, rows: int = VIEWER_ROWS) -> dict[str, Any]:
    """A report as a table for the viewer's page: columns, their kinds, the first rows."""
    cols = list(r.columns)
    n = min(len(r), rows)
    data = [_shown(r, c, n) if c in r.names else [f"{int(x):#x}" for x in r.columns[c][:n].tolist()]
            if r.kinds.get(c) == "addr" else _cells(r.columns[c][:n]) for c in cols]
    return {"title": r.title, "columns": cols, "kinds": {c: r.kinds.get(c, "") for c in cols},
            "rows": [list(x) for x in zip(*data)] if cols else [], "total": len(r), "notes": list(r.notes)}


def _cells(a: np.ndarray) -> list[Any]:
    if a.dtype.kind == "f":
        return [None if not np.isfinite(x) else float(x) for x in a.tolist()]
    if a.dtype.kind == "u" and a.dtype.itemsize == 8:
        return [int(x) for x in a.tolist()]
    return [x if isinstance(x, (int, float, str, bool)) or x is None else str(x) for x in a.tolist()]
