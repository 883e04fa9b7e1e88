"""Parquet export, read back by pyarrow and DuckDB."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from osvtrace.cli.main import main
from osvtrace.errors import UsageError
from osvtrace.exports import Options, export
from osvtrace.model import SPECS
from osvtrace.model.filters import Filter


def test_every_table_round_trips_through_pyarrow_and_duckdb(story, tmp_path):
    out = tmp_path / "pq"
    res = export(story, "parquet", out, Options())
    files = sorted(p.stem for p in out.glob("*.parquet"))
    assert set(SPECS) <= set(files)
    assert {"sched_switch", "mutex_handoff", "trace_marker"} <= set(files)
    assert res.counts["files"] == len(files)
    con = duckdb.connect()
    for name in SPECS:
        t = story.table(name)
        a = pq.read_table(out / f"{name}.parquet")
        assert a.column_names == [c.name for c in t.spec.columns] + ["trace"]
        assert a.num_rows == len(t)
        for c in t.spec.columns:
            got = a.column(c.name).to_pylist()
            assert got == t[c.name].tolist(), (name, c.name)
        n, traces = con.execute(f"select count(*), list(distinct trace) from '{out / name}.parquet'").fetchall()[0]
        assert n == len(t) and (traces == ["story"] or n == 0)
    # tracepoint tables: the same columns `osvtrace query` offers
    row = con.execute(f"select time, cpu, tid, mutex, from_tid, to_tid from '{out}/mutex_handoff.parquet'").fetchall()
    assert row == [(401, 0, 2, 0xA000, 2, 3)]
    labels = con.execute(f"select label from '{out}/trace_marker.parquet' order by time").fetchall()
    assert labels == [("end",), ("end",)]


def test_many_traces_in_one_lake(story_file, small_trace, tmp_path):
    lake = tmp_path / "lake"
    for path, vm in ((story_file, "vm1"), (small_trace, "vm2")):
        assert main(["export", str(path), "--format", "parquet", "-o", str(lake), "--layout", "by-table",
                     "--trace-id", vm]) == 0
    assert sorted(p.name for p in (lake / "sched_slice").iterdir()) == ["vm1.parquet", "vm2.parquet"]
    per_vm = duckdb.connect().execute(
        f"select trace, count(*) from read_parquet('{lake}/sched_slice/*.parquet') group by trace order by trace"
    ).fetchall()
    assert [v for v, _ in per_vm] == ["vm1", "vm2"] and all(n > 0 for _, n in per_vm)
    # the same trace id again needs --force; another id just joins the lake
    assert main(["export", str(story_file), "--format", "parquet", "-o", str(lake), "--layout", "by-table",
                 "--trace-id", "vm1"]) == 2
    assert main(["export", str(story_file), "--format", "parquet", "-o", str(lake), "--layout", "by-table",
                 "--trace-id", "vm1", "--force"]) == 0


def test_filters_select_rows(story, tmp_path):
    out = tmp_path / "cpu1"
    export(story, "parquet", out, Options(Filter(cpus=[1])))
    s = pq.read_table(out / "sched_slice.parquet")
    assert s.num_rows == int((story.sched_slice["cpu"] == 1).sum())
    assert set(s.column("cpu").to_pylist()) == {1}
    ev = pq.read_table(out / "events.parquet")
    assert set(ev.column("cpu").to_pylist()) == {1}
    out = tmp_path / "thread"
    export(story, "parquet", out, Options(Filter(threads=["a"])))
    h = pq.read_table(out / "handoff.parquet")  # a thread filter keeps rows naming it in any thread column
    assert h.num_rows == 1
    w = pq.read_table(out / "mutex_wait.parquet")  # b waited; a handed it over
    assert w.column("handed_by").to_pylist() == [2]


def test_output_directory_rules(story, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        export(story, "parquet", out, Options())
    export(story, "parquet", out, Options(force=True))
    assert (out / "notes.txt").read_text() == "mine"  # --force replaces only export files
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        export(story, "parquet", f, Options())


def test_trace_column_is_a_dictionary_of_one_string(story, tmp_path):
    export(story, "parquet", tmp_path / "d", Options(trace_id="vm-7"))
    col = pq.read_table(tmp_path / "d" / "events.parquet").column("trace")
    assert set(col.to_pylist()) == {"vm-7"}
    assert np.all(np.asarray(col.combine_chunks().indices) == 0)
