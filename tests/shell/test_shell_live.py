"""The live screen: its statistics on known events, and the whole screen following a trace
file that a writer is still appending to (the synthetic live source)."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import osvtrace
from osvtrace.errors import UsageError
from osvtrace.format import synth
from osvtrace.format.osvt import TraceWriter, new_metadata, scan
from osvtrace.shell import top
from osvtrace.shell.live import GrowingFileSource, open_source
from tests.support.traces import M
from tests.support.traces import grow


def test_stats_of_the_story_trace(story_file):
    src = GrowingFileSource(story_file)
    st = top.TopStats()
    st.feed(src.poll())
    assert src.poll() is None  # nothing new
    assert st.total == 19 and st.finished and st.lost == {0: 0, 1: 5}
    assert st.span == 700
    r = st.rates()
    assert r["sched_switch"] == pytest.approx(4 / 700e-9) and r["trace_lost"] == pytest.approx(1 / 700e-9)
    load = st.load()
    # cpu0: a ran 200-510, main from 510 to the end (800); cpu1: idle1 180-305, then b to the end
    assert load[0][0] == pytest.approx(600 / 700) and load[1][0] == pytest.approx(495 / 700)
    (mx,) = st.mutexes()
    assert mx["mutex"] == M and mx["waiters"] == pytest.approx(290 / 700)  # b waited 160-450
    assert mx["waits_s"] == pytest.approx(1 / 700e-9) and mx["locks_s"] == pytest.approx(2 / 700e-9)
    text = st.render("story.osvt", 100, 40)
    assert "(finished; 19 events" in text and "lost records: cpu1 5" in text
    assert f"{M:#20x}" in text and "sched_switch" in text


def test_waits_pair_with_wakes_across_batches_and_old_bins_leave_the_window(tmp_path, catalog):
    from osvtrace.format.encode import CpuStreamBuilder

    b = CpuStreamBuilder(catalog)
    b.add("mutex_lock_wait", [1_000], 3, mutex=M)
    first = b.slots()
    b2 = CpuStreamBuilder(catalog)
    b2.add("mutex_lock_wake", [3_000_000_000], 3, mutex=M)
    b2.add("mutex_lock", [9_000_000_000], 4, mutex=M)
    path = tmp_path / "w.osvt"
    w = TraceWriter(path, new_metadata(catalog, ncpus=1, tsc_hz=1_000_000_000))
    w.write_chunk(0, 0, first)
    w.flush()
    src, st = GrowingFileSource(path), top.TopStats(window_ns=10_000_000_000)
    st.feed(src.poll())
    assert st.mutexes()[0]["waiters"] == 0  # still waiting: no duration yet
    w.write_chunk(0, 10, b2.slots())  # slots 1..9 never arrive: a gap of 9
    w.close()
    st.feed(src.poll())
    (mx,) = st.mutexes()
    assert mx["waiters"] == pytest.approx((3e9 - 1000) / (9e9 - 1000))
    assert st.lost == {0: 9}
    st.window = 1_000_000_000
    st._trim()
    assert sorted(st.bins) == [90] and [m["mutex"] for m in st.mutexes()] == [M]  # only the last lock is recent


def test_a_file_copied_in_odd_pieces_decodes_to_the_same_events(tmp_path):
    full = tmp_path / "full.osvt"
    synth.generate(full, 50_000, cpus=2)
    data = full.read_bytes()
    part = tmp_path / "part.osvt"
    src, st = GrowingFileSource(part), top.TopStats()
    assert src.poll() is None  # not there yet
    step = 7_777  # never on a section boundary
    for i in range(0, len(data), step):
        with open(part, "ab") as f:
            f.write(data[i:i + step])
        b = src.poll()
        if b is not None:
            st.feed(b)
    t = osvtrace.open(full)
    assert st.total == len(t) and st.finished
    assert st.tp_total.tolist()[:t.catalog.max_id + 1] == np.bincount(t.events.tp, minlength=t.catalog.max_id + 1).tolist()


def test_a_scan_goes_on_from_where_the_last_one_stopped(tmp_path):
    full = tmp_path / "full.osvt"
    synth.generate(full, 20_000, cpus=2)
    data = full.read_bytes()
    whole = scan(data, "full")
    cut = whole.chunks[len(whole.chunks) // 2].offset + 100  # inside a chunk
    first = scan(data[:cut], "part")
    assert first.truncated and first.end == whole.chunks[len(whole.chunks) // 2].offset
    rest = scan(data, "full", start=first.end, meta=first.meta)
    assert [c.offset for c in first.chunks + rest.chunks] == [c.offset for c in whole.chunks]
    assert rest.trailer is not None and rest.end == len(data)
    assert scan(data, "full", start=rest.end, meta=first.meta).chunks == []


def test_the_screen_follows_a_growing_file_until_it_finishes(tmp_path):
    full = tmp_path / "full.osvt"
    n = synth.generate(full, 200_000, cpus=2)
    live = tmp_path / "live.osvt"
    writer = threading.Thread(target=grow, args=(full, live, 4000, 0.03))
    with create_pipe_input() as inp:
        src = open_source(str(live))  # the file does not exist yet: the screen waits for it
        writer.start()
        t0 = time.monotonic()
        st = top.run(src, interval=0.05, input=inp, output=DummyOutput(), until_finished=True)
        took = time.monotonic() - t0
    writer.join()
    assert st.total == n - 8  # 8 two-slot thread_create records
    assert st.batches >= 5 and took < 20
    rates = st.rates()
    assert set(rates) >= {"sched_switch", "mutex_lock", "mutex_handoff"}
    assert all(0.9 < share <= 1.0 for share, _ in st.load().values())  # synth CPUs never idle
    assert len(st.mutexes()) == 8 and len(st.mutexes(5)) == 5  # synth uses 8 mutexes


def test_bad_live_sources_get_one_line(tmp_path):
    sock_path = tmp_path / "vm.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))  # bound, nobody listening: a recorder that has gone
    try:
        with pytest.raises(UsageError, match="nobody listens"):
            open_source(str(sock_path))
    finally:
        s.close()
    with pytest.raises(UsageError, match="not a trace file"):
        open_source(str(tmp_path))
    with pytest.raises(UsageError, match="no such file or socket"):
        open_source(str(tmp_path / "gone.sock"))  # a path, not an app name
    with pytest.raises(UsageError, match="which application"):
        open_source("  ")
    from osvtrace.cli.main import main

    f = tmp_path / "t.osvt"
    synth.generate(f, 1000)
    assert main(["shell", "--live", str(f), "--smp", "2"]) == 2  # VM options are for --live APP
    assert main(["shell", str(f), "-o", "x.osvt"]) == 2
