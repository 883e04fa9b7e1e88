"""Parquet export: every table of the model, and every tracepoint with its arguments, one file each.

The same tables `osvtrace query` offers (docs/tables.md, plus one table per
tracepoint named after it), so a query written against one trace runs unchanged
over a directory of exports in DuckDB, Spark or Trino. Each file has an extra
``trace`` column (--trace-id, by default the trace file's stem), which tells the
traces of many VMs apart once they are read together (docs/exports.md).

Layouts: ``flat`` writes OUT/TABLE.parquet; ``by-table`` writes
OUT/TABLE/TRACE_ID.parquet, so exports of many traces into one OUT form one
directory per table (what Hive-style engines call a table location).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.exports.common import Options, Result, Selection, prepare_dir
from osvtrace.exports.registry import register
from osvtrace.model import SPECS, Model
from osvtrace.query.sql import tracepoint_table

LAYOUTS = ("flat", "by-table")


def _arrow_table(model: Model, name: str, sel: Selection):  # -> pyarrow.Table
    import pyarrow as pa

    if name in SPECS:
        t = model.table(name)
        keep = sel.rows(t) if not sel.everything else None
        cols = {}
        for c in t.spec.columns:
            v = t[c.name] if keep is None else t[c.name][keep]
            cols[c.name] = pa.array(v.tolist(), pa.string()) if v.dtype == object else pa.array(v)
        return pa.table(cols)
    tbl = tracepoint_table(model, name)
    if sel.everything:
        return tbl
    keep = sel.points(tbl.column("time").to_numpy()) & sel.cpu_ok(tbl.column("cpu").to_numpy()) & \
        sel.tid_ok(tbl.column("tid").to_numpy())
    return tbl.filter(pa.array(keep))


def table_names(model: Model) -> list[str]:
    """Model tables, then the tracepoints that have records (in id order)."""
    counts = np.bincount(model.trace.events.tp, minlength=model.trace.catalog.max_id + 1)
    tps = [tp.name for tp in model.trace.catalog.tracepoints if counts[tp.id] and tp.name not in SPECS]
    return list(SPECS) + tps


@register("parquet", suffix="/",
          doc="A directory of Parquet files, one per table and per tracepoint (DuckDB, pyarrow, Spark, Trino).")
def write(model: Model, out: Path, opts: Options) -> Result:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if opts.layout not in LAYOUTS:
        raise UsageError(f"--layout {opts.layout}: choose one of {', '.join(LAYOUTS)}")
    trace_id = opts.trace_id or model.trace.path.stem
    if "/" in trace_id or trace_id in ("", ".", ".."):
        raise UsageError(f"--trace-id {trace_id!r}: must be usable as a file name")
    names = table_names(model)
    if opts.layout == "flat":
        known = set(names)
        prepare_dir(out, opts.force, lambda p: p.suffix == ".parquet" and p.stem in known)
        paths = [out / f"{name}.parquet" for name in names]
    else:
        # a shared lake: other traces' files stay; this trace's files are replaced only with --force
        paths = [out / name / f"{trace_id}.parquet" for name in names]
        clash = [p for p in paths if p.exists()]
        if clash and not opts.force:
            raise UsageError(f"{clash[0]}: exists (trace id {trace_id!r} exported before); use --force to "
                             f"replace it or --trace-id to name this trace differently")
        prepare_dir(out, True, lambda p: False)
    sel = Selection(model.trace, opts.filter)
    rows = 0
    for k, (name, path) in enumerate(zip(names, paths)):
        opts.progress(k, len(names), f"writing {name}")
        tbl = _arrow_table(model, name, sel)
        # the trace id as a dictionary column: one string per file, whatever the rows
        ids = pa.DictionaryArray.from_arrays(pa.array(np.zeros(tbl.num_rows, np.int32)), pa.array([trace_id]))
        tbl = tbl.append_column("trace", ids)
        try:
            path.parent.mkdir(exist_ok=True)
            pq.write_table(tbl, path, compression="zstd")
        except OSError as e:
            raise UsageError(f"{path}: cannot write: {e.strerror or e}") from None
        rows += tbl.num_rows
    opts.progress(len(names), len(names), "parquet")
    return Result(out, {"files": len(names), "rows": rows})
