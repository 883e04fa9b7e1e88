"""Real OSv trace files (tests/fixtures/osv/, made with ../shared/osv: see the README there)
open wherever a trace opens, with the counts OSv's own trace.py prints, thread names,
backtraces with symbols, pascal strings, blobs, and a warning where a CPU's ring wrapped."""

from __future__ import annotations

import numpy as np
import pytest

import osvtrace
from osvtrace.cli.main import main
from osvtrace.format.osv_dump import OsvTrace
from tests.support.osv_traces import expected_summary, fixture, osv_dir, parse_summary, tracepy_summary
from tests.support.traces import in_ci

FILES = {"dump": "mutexnet-rest.dump", "tracefile": "mutexnet-bt.tracefile"}
KINDS = {"dump": "osv-dump", "tracefile": "osv-tracefile"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("osv")
    return {k: fixture(name, d) for k, name in FILES.items()}


def _counts(t) -> list[tuple[str, int]]:
    c = np.bincount(t.events.tp, minlength=t.catalog.max_id + 1)
    return sorted((tp.name, int(c[tp.id])) for tp in t.catalog.tracepoints if c[tp.id])


@pytest.mark.parametrize("kind", list(FILES))
def test_both_osv_formats_open_with_osvtrace_open(files, kind):
    t = osvtrace.open(files[kind])
    assert isinstance(t, OsvTrace) and t.facts.kind == KINDS[kind] and not t.facts.damage, t.warnings
    assert len(t) > 1000 and t.ncpus == 2 and (np.diff(t.events.time) >= 0).all()
    assert set(np.unique(t.events.cpu).tolist()) == {0, 1}


@pytest.mark.parametrize("kind", list(FILES))
def test_per_tracepoint_counts_equal_osv_trace_py_summary(files, kind):
    t = osvtrace.open(files[kind])
    assert _counts(t) == expected_summary(FILES[kind])


@pytest.mark.parametrize("kind", list(FILES))
def test_per_tracepoint_counts_equal_trace_py_run_now(files, kind):
    osv = osv_dir()
    if osv is None:
        msg = "no OSv tree (../shared/osv/build.sh, or OSV_DIR / OSV_SRC) to run scripts/trace.py from"
        if in_ci():
            pytest.fail(msg)  # CI must build OSv (../shared/osv/build.sh): this test is why
        pytest.skip(msg)
    assert _counts(osvtrace.open(files[kind])) == parse_summary(tracepy_summary(osv, files[kind]))


@pytest.mark.parametrize("kind", list(FILES))
def test_thread_pointers_become_small_ids_with_osv_thread_names(files, kind):
    t = osvtrace.open(files[kind])
    tids = t.tids()
    assert tids.min() >= 1 and tids.max() == len(tids)  # dense, from 1
    names = set(t.threads.values())
    assert any(n.startswith("idle") for n in names), names  # OSv's per-CPU idle threads
    assert any("mutexnet" in n or n.startswith(">") or n.startswith("/") for n in names), names  # the app
    ptrs = t.thread_pointers()
    assert len(set(ptrs.values())) == len(ptrs) and all(p and p % 8 == 0 for p in ptrs.values())
    assert sorted(ptrs, key=ptrs.get) == sorted(ptrs)  # ids follow the pointers' order


def test_backtraces_are_decoded_and_named_by_the_symbols_file(files):
    t = osvtrace.open(files["tracefile"])
    idx = np.nonzero(t.events.tp == t.tracepoint_ids("mutex_lock")[0])[0][:50]
    bt = t.backtraces(idx)
    assert bt.shape[0] == len(idx) and bt.shape[1] <= 10 and (bt[:, 0] != 0).all()
    named = [t.symbol(int(a)) for a in bt[bt != 0][:200].tolist()]
    assert all(named) and any("mutex" in n for n in named), named[:10]


def test_the_dump_decodes_backtraces_and_names_frames_from_its_symbol_chunks(files):
    t = osvtrace.open(files["dump"])
    if t.backtrace_len == 0 or not (t._rec.nbt > 0).any():
        pytest.skip("this dump was recorded without --trace-backtrace")
    assert t.backtrace_len == 10
    has = np.nonzero(t._rec.nbt[t.events.row] > 0)[0][:50]
    frames = t.backtraces(has)
    assert frames.shape == (len(has), 10)
    named = [t.symbol(int(a)) for a in frames[frames != 0][:100].tolist()]
    assert sum(n is not None for n in named) >= len(named) // 3, named[:10]
    assert any(n and "mutex" in n for n in named), named[:10]


@pytest.mark.parametrize("kind", list(FILES))
def test_pascal_strings_and_blobs_read_as_trace_py_prints_them(files, kind):
    t = osvtrace.open(files[kind])
    strs = [tp for tp in t.catalog.tracepoints if any(f.type == "str" for f in tp.fields)
            and (t.events.tp == tp.id).any()]
    if kind == "tracefile":  # the dump's rings wrapped after the app started: no elf_load, vfs_open left
        assert strs, "the fixture has a tracepoint with a string argument (elf_load, vfs_open)"
    for tp in strs:
        idx = np.nonzero(t.events.tp == tp.id)[0]
        for f in tp.fields:
            if f.type == "str":
                v = t.field_values(f, t.events.row[idx])
                assert all(len(s) and b"\0" not in s for s in v.tolist()), v[:5]
    elf = [tp for tp in strs if tp.name == "elf_load"]
    if elf:
        idx = np.nonzero(t.events.tp == elf[0].id)[0]
        paths = t.field_values(elf[0].field("a0"), t.events.row[idx]).tolist()
        assert paths and all(p.startswith(b"/") and p.endswith(b".so") for p in paths), paths
        assert t.format_event(int(idx[0])) == paths[0].decode()  # OSv's "%s"
    blobs = [tp for tp in t.catalog.tracepoints if any(f.type == "bytes" for f in tp.fields)
             and (t.events.tp == tp.id).any()]
    for tp in blobs:  # net_packet_in/out: an IP packet each
        idx = np.nonzero(t.events.tp == tp.id)[0][:20]
        n = t.field_values(tp.field("a1_len"), t.events.row[idx])
        assert (n > 0).all()
        text = t.format_event(int(idx[0]))
        assert "data={" in text and text.endswith("}")


def test_each_cpus_start_is_reported_when_rings_wrapped(files):
    t = osvtrace.open(files["dump"])
    starts = t.cpu_starts()
    assert set(starts) == {0, 1}
    late = max(starts.values()) - min(starts.values())
    notes = [w for w in t.warnings if "data starts" in w]
    assert bool(notes) == (late >= 1_000_000), (starts, notes)


@pytest.mark.parametrize("kind", list(FILES))
def test_report_summary_and_query_work_on_osv_files(files, kind, capsys):
    assert main(["report", "summary", str(files[kind])]) == 0
    out = capsys.readouterr().out
    assert "sched_switch" in out and "mutex_lock" in out
    assert main(["query", str(files[kind]), "select count(*) as n from events"]) == 0
    out = capsys.readouterr().out
    assert str(len(osvtrace.open(files[kind]))) in out


@pytest.mark.parametrize("report", ["sched", "wakeup", "mutex", "cpu", "net", "lhp", "list", "prof-wait",
                                    "prof-lock"])
def test_reports_that_need_osv_mapping_do_not_crash(files, report, capsys):
    assert main(["report", report, str(files["dump"])] + (["--limit", "5"] if report == "list" else [])) == 0


@pytest.mark.parametrize("argv", [["export", "--format", "chrome", "-o", "{out}.json"],
                                  ["export", "--format", "perfetto", "-o", "{out}.pftrace"],
                                  ["view", "--static", "-o", "{out}.html"], ["info"]], ids=lambda a: " ".join(a[:3]))
def test_exports_view_and_info_open_osv_files(files, argv, tmp_path):
    args = [a.format(out=tmp_path / "o") for a in argv]
    assert main([args[0], str(files["tracefile"]), *args[1:]]) == 0


def test_info_says_where_each_cpus_data_starts(files, capsys):
    assert main(["info", str(files["dump"])]) == 0
    out = capsys.readouterr().out
    assert "(osv-dump)" in out and "data starts cpu0 +0.000 s, cpu1 +0.302 s" in out, out
