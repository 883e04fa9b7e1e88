"""SQL over a trace's tables with DuckDB.

Only the tables a query names are built and registered (the model builds each on
first use). Besides the model's tables (docs/tables.md), every tracepoint is a
table of its own named after it, with time, cpu, tid and its arguments.
"""

from __future__ import annotations

import re

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.model import SPECS, Model

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def tracepoint_table(model: Model, name: str):  # -> pyarrow.Table
    import pyarrow as pa

    t = model.trace
    tp = t.catalog.by_name[name]
    idx, args = t.args(name)
    cols = {"time": t.events.time[idx], "cpu": t.events.cpu[idx], "tid": t.events.tid[idx]}
    for f in tp.fields:
        v = args[f.name]
        if f.type == "str":
            cols[f.name] = pa.array([x.decode("utf-8", "replace") for x in v.tolist()], pa.string())
        elif f.type == "bytes":
            cols[f.name] = pa.array([bytes(x) for x in v], pa.binary())
        elif f.type == "bool":
            cols[f.name] = v.astype(bool)
        else:
            cols[f.name] = v
    return pa.table(cols)


def connect(model: Model, sql: str):  # -> duckdb.DuckDBPyConnection
    import duckdb

    con = duckdb.connect()
    words = {w.lower() for w in _IDENT.findall(sql)}
    for name in SPECS:
        if name in words:
            con.register(name, model.table(name).to_arrow())
    for name in model.trace.catalog.by_name:
        if name in words and name not in SPECS:
            con.register(name, tracepoint_table(model, name))
    return con


def query(model: Model, sql: str):  # -> pyarrow.Table
    """Run one SQL statement; errors become one clear line."""
    import duckdb
    import pyarrow as pa

    con = connect(model, sql)
    try:
        rel = con.sql(sql)
        return pa.table({}) if rel is None else rel.to_arrow_table()
    except duckdb.Error as e:
        msg = str(e).strip().splitlines()[0]
        raise UsageError(f"SQL: {msg}") from None


def table_names(model: Model) -> list[str]:
    return list(SPECS) + [n for n in model.trace.catalog.by_name if n not in SPECS]


def arrow_columns(tbl) -> dict[str, np.ndarray]:
    """A pyarrow table as numpy columns (object arrays where needed), for the report renderers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    seen: dict[str, int] = {}
    for i, name in enumerate(tbl.column_names):
        # a join may repeat a name (threads.name, tracepoints.name): the second becomes
        # name_1, the third name_2, as DuckDB's own shell names them
        k = seen.get(name, 0)
        seen[name] = k + 1
        if k:
            name = f"{name}_{k}"
        col = tbl.column(i)
        if pa.types.is_decimal(col.type):  # sums of int64: integers when they fit
            col = pc.cast(col, pa.int64()) if col.type.scale == 0 and col.type.precision <= 38 else \
                pc.cast(col, pa.float64())
        if pa.types.is_interval(col.type):  # pyarrow's to_numpy crashes the process on these
            out[name] = np.array([None if v is None else str(v) for v in col.to_pylist()], object)
            continue
        try:
            out[name] = col.to_numpy()
        except Exception:
            out[name] = np.array(col.to_pylist(), object)
    return out


def render(tbl, fmt: str = "table", limit: int | None = 100) -> str:  # noqa: ANN001 (pyarrow table)
    """A query result as text (a table), CSV or JSON: what `osvtrace query` and the shell print."""
    from osvtrace.reports import render as out
    from osvtrace.reports.common import Report

    r = Report("", arrow_columns(tbl))
    if fmt == "json":
        return out.to_json(r.records())
    if fmt == "csv":
        return out.render_csv(r).rstrip("\n")
    return out.render_text(r, limit, grouping=False)
