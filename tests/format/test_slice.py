"""`osvtrace slice`: a time window of a trace as a valid, smaller .osvt that decodes to exactly
the original's records in that window, keeps names, stacks and loss inside the window, and
does not mistake what lies outside it for loss."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import osvtrace
from osvtrace.errors import UsageError
from osvtrace.format.encode import CpuStreamBuilder
from osvtrace.format.slice import slice_trace
from osvtrace.format.synth import generate
from tests.support.traces import write_trace


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    path = tmp_path_factory.mktemp("slice") / "synth.osvt"
    generate(path, events=60_000, cpus=3, seed=7)
    return path


def window(t, lo, hi):
    """Indices of t's events with lo <= time < hi."""
    return np.arange(np.searchsorted(t.events.time, lo), np.searchsorted(t.events.time, hi))


def assert_same_records(orig, idx, sl):
    """sl holds exactly orig's events idx: same times, CPUs, threads, tracepoints, arguments."""
    ev, se = orig.events, sl.events
    assert len(se) == len(idx)
    for col in ("time", "cpu", "tid", "tp"):
        np.testing.assert_array_equal(getattr(se, col), getattr(ev, col)[idx], err_msg=col)
    for tp in orig.catalog.tracepoints:
        mine = idx[ev.tp[idx] == tp.id]
        if not len(mine) or not tp.fields:
            continue
        a, b = orig.args_at(tp, mine), sl.args_at(tp, np.flatnonzero(se.tp == tp.id))
        for f in a:
            np.testing.assert_array_equal(b[f], a[f], err_msg=f"{tp.name}.{f}")


def test_slice_holds_exactly_the_windows_records_with_their_arguments(synth, tmp_path):
    t = osvtrace.open(synth)
    lo, hi = np.percentile(t.events.time, [30, 55]).astype(np.int64).tolist()
    res = slice_trace(t, tmp_path / "s.osvt", lo, hi)
    s = osvtrace.open(tmp_path / "s.osvt")
    assert_same_records(t, window(t, lo, hi), s)
    assert res.events == len(s) and sum(res.per_cpu.values()) == len(s)
    # nothing before the window is taken for loss: no gap, nothing overwritten, no drop
    for lc in s.loss.values():
        assert (lc.gap_slots, lc.overwritten_slots, lc.dropped, lc.invalid_slots) == (0, 0, 0, 0)
    assert s.facts.complete and s.facts.origin.startswith("slice of synth.osvt")
    assert s.path.stat().st_size < 0.4 * synth.stat().st_size


def test_thread_names_from_before_the_window_are_kept(story_file, tmp_path):
    t = osvtrace.open(story_file)
    slice_trace(t, tmp_path / "s.osvt", 200, 1000)  # after a and b were created (100, 110)
    s = osvtrace.open(tmp_path / "s.osvt")
    assert s.events.time.min() >= 200
    assert s.thread_name(2) == "a" and s.thread_name(3) == "b" and s.thread_name(9) == "idle1"


def test_a_gap_inside_the_window_stays_a_gap_and_one_outside_is_only_noted(tmp_path):
    from osvtrace.catalog.schema import default_catalog

    b = CpuStreamBuilder(default_catalog())
    b.add("sched_wake", np.arange(0, 6000, 3), 2, tid=5, cpu=0)
    path = write_trace(tmp_path / "g.osvt", {0: b.slots()}, chunk=100)
    data = bytearray(path.read_bytes())
    t0 = osvtrace.open(path)
    lost = [c for c in t0.scan.chunks if c.first_seq in (500, 1500)]  # two chunks: ~t 1500 and ~4500
    for c in lost:
        data[c.row * 32 + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    t = osvtrace.open(path)
    assert t.loss[0].gap_slots == 200
    # a window around the second damaged chunk only: that one chunk's slots are a gap
    slice_trace(t, tmp_path / "in.osvt", 3600, 5400)
    s = osvtrace.open(tmp_path / "in.osvt")
    assert s.loss[0].gap_slots == 100 and s.loss[0].overwritten_slots == 0
    assert_same_records(t, window(t, 3600, 5400), s)
    # a window clear of both: no loss in it, the original's is noted as the slice's origin
    slice_trace(t, tmp_path / "out.osvt", 2000, 3000)
    o = osvtrace.open(tmp_path / "out.osvt")
    assert o.loss[0].gap_slots == 0
    assert "lost 200 records/slots" in o.facts.origin
    assert json.loads(o.meta.extra["source_loss"])["cpus"]["0"]["gap_slots_total"] == 200


def test_writer_drops_count_from_the_window_not_from_boot(tmp_path):
    from osvtrace.catalog.schema import default_catalog
    from osvtrace.format.osvt import TraceWriter, new_metadata

    b = CpuStreamBuilder(default_catalog())
    b.add("sched_wake", np.arange(0, 3000, 3), 2, tid=5, cpu=0)
    slots = b.slots()
    with TraceWriter(tmp_path / "d.osvt", new_metadata(default_catalog(), ncpus=1, tsc_hz=1_000_000_000)) as w:
        for i, lost_total in zip(range(0, 1000, 250), (0, 7, 7, 10)):  # 7 dropped in chunk 2, 3 in chunk 4
            w.write_chunk(0, i, slots[i:i + 250], lost_total)
    t = osvtrace.open(tmp_path / "d.osvt")
    assert t.loss[0].dropped == 10
    slice_trace(t, tmp_path / "late.osvt", 1600, 3000)  # chunks 3 and 4 (a record every 3 ns): their 3 drops
    assert osvtrace.open(tmp_path / "late.osvt").loss[0].dropped == 3
    slice_trace(t, tmp_path / "early.osvt", 0, 900)  # chunks 1 (t 0-747) and 2 (t 750-1497)
    assert osvtrace.open(tmp_path / "early.osvt").loss[0].dropped == 7


def test_a_slice_of_a_slice_equals_the_direct_slice(synth, tmp_path):
    t = osvtrace.open(synth)
    lo, hi = np.percentile(t.events.time, [10, 90]).astype(np.int64).tolist()
    slice_trace(t, tmp_path / "wide.osvt", lo, hi)
    lo2, hi2 = np.percentile(t.events.time, [40, 45]).astype(np.int64).tolist()
    slice_trace(osvtrace.open(tmp_path / "wide.osvt"), tmp_path / "narrow.osvt", lo2, hi2)
    slice_trace(t, tmp_path / "direct.osvt", lo2, hi2)
    a, b = osvtrace.open(tmp_path / "narrow.osvt"), osvtrace.open(tmp_path / "direct.osvt")
    for col in ("time", "cpu", "tid", "tp"):
        np.testing.assert_array_equal(getattr(a.events, col), getattr(b.events, col))
    assert a.meta.extra["sliced_from"] == "wide.osvt"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(0, 100), st.floats(0, 100))
def test_any_window_decodes_to_the_originals_records_in_it(synth, tmp_path, p, q):
    t = osvtrace.open(synth)
    lo, hi = sorted(np.percentile(t.events.time, [p, q]).astype(np.int64).tolist())
    out = tmp_path / f"w{p:.3f}-{q:.3f}.osvt"
    slice_trace(t, out, lo, hi)
    assert_same_records(t, window(t, lo, hi), osvtrace.open(out))


def run(*args):
    return subprocess.run([sys.executable, "-m", "osvtrace", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_slice_command_writes_a_file_every_command_opens(synth, tmp_path):
    out = tmp_path / "cli.osvt"
    r = run("slice", synth, "--since", "1ms", "--until", "3ms", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["events"] > 0 and doc["since_ns"] == 1_000_000 and doc["until_ns"] == 3_000_000
    r = run("report", "summary", out)
    assert r.returncode == 0 and "origin    slice of synth.osvt, 0.001000 s to 0.003000 s" in r.stdout, r.stdout


@pytest.mark.parametrize("args, message", [
    (["--since", "2ms", "--until", "1ms"], "--until 1ms is not after --since 2ms"),
    ([], "give --since, --until or both"),
    (["--since", "soon"], "--since"),
])
def test_bad_windows_get_one_clear_line(synth, tmp_path, args, message):
    r = run("slice", synth, *args, "-o", tmp_path / "x.osvt")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "x.osvt").exists()


def test_existing_output_and_the_input_itself_are_refused(synth, tmp_path):
    out = tmp_path / "x.osvt"
    out.write_bytes(b"keep me")
    r = run("slice", synth, "--since", "1ms", "-o", out)
    assert r.returncode == 2 and "exists (--force overwrites it)" in r.stderr
    assert out.read_bytes() == b"keep me"
    r = run("slice", synth, "--since", "1ms", "-o", synth, "--force")
    assert r.returncode == 2 and "is the input trace" in r.stderr


def test_an_osv_dump_is_refused_with_what_to_do_instead(tmp_path):
    import lzma
    from pathlib import Path

    dump = tmp_path / "mutexnet-rest.dump"
    dump.write_bytes(lzma.decompress((Path(__file__).parents[1] / "fixtures/osv/mutexnet-rest.dump.xz").read_bytes()))
    r = run("slice", dump, "--since", "1s", "-o", tmp_path / "x.osvt")
    assert r.returncode == 2 and "this is an osv-dump trace" in r.stderr and "--since/--until" in r.stderr, r.stderr
    # the dump's own warnings come first; the refusal is one line, and nothing is written
    assert r.stderr.strip().splitlines()[-1].startswith("osvtrace: ") and "Traceback" not in r.stderr
    assert not (tmp_path / "x.osvt").exists()
