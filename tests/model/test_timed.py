"""The timed pairs table: X / X_ret / X_err matched per thread with a stack, on traces whose
embedded schema declares such pairs (as an OSv trace's does), and the records left over."""

from __future__ import annotations

import osvtrace
from osvtrace.model import Model
from tests.support.traces import catalog_with, events_trace

CALLS = [("vfs_read", 900, [{"name": "fd", "type": "u32"}]), ("vfs_read_ret", 901, [{"name": "n", "type": "s64"}]),
         ("vfs_read_err", 902, [{"name": "errno", "type": "s32"}]), ("net_poll", 903, []),
         ("net_poll_ret", 904, [])]


def model_of(tmp_path, per_cpu_events, threads=None, first_seq=None) -> Model:
    return Model(osvtrace.open(events_trace(tmp_path / "t.osvt", catalog_with(*CALLS), per_cpu_events,
                                            threads=threads, first_seq=first_seq)))


def rows(t, cols):
    return [tuple(r[c] for c in cols) for r in t.rows()]


def test_nested_calls_of_one_tracepoint_pair_innermost_first(tmp_path):
    m = model_of(tmp_path, {0: [("vfs_read", 100, 5, {"fd": 1}), ("vfs_read", 110, 5, {"fd": 2}),
                                ("vfs_read_ret", 150, 5, {"n": 3}), ("vfs_read_err", 400, 5, {"errno": 5})]})
    assert rows(m.timed, ["name", "tid", "start", "dur", "ok", "depth"]) == [
        ("vfs_read", 5, 100, 300, False, 0), ("vfs_read", 5, 110, 40, True, 1)]
    assert len(m.timed_unmatched) == 0


def test_pairs_of_threads_interleaved_on_cpus_match_per_thread(tmp_path):
    # threads 5 and 6 both call vfs_read, interleaved in time and across CPUs; 6 migrates
    m = model_of(tmp_path, {0: [("vfs_read", 100, 5), ("vfs_read", 120, 6), ("net_poll", 130, 5),
                                ("vfs_read_ret", 200, 5), ("net_poll_ret", 210, 5)],
                            1: [("vfs_read", 90, 7), ("vfs_read_ret", 300, 6), ("vfs_read_ret", 310, 7)]})
    got = rows(m.timed, ["name", "tid", "cpu", "end_cpu", "start", "dur", "depth"])
    assert got == [("vfs_read", 7, 1, 1, 90, 220, 0), ("vfs_read", 5, 0, 0, 100, 100, 0),
                   ("vfs_read", 6, 0, 1, 120, 180, 0), ("net_poll", 5, 0, 0, 130, 80, 1)]


def test_records_without_a_partner_are_counted_not_fatal(tmp_path):
    # an exit whose entry came before the trace, an entry whose exit was lost (a later call of
    # the same thread pairs up), and an entry still open when the trace ends
    m = model_of(tmp_path, {0: [("vfs_read_ret", 50, 5), ("vfs_read", 100, 5), ("vfs_read", 200, 5),
                                ("vfs_read_ret", 250, 5), ("net_poll", 300, 5)]})
    assert rows(m.timed, ["name", "start", "dur", "depth"]) == [("vfs_read", 200, 50, 0)]  # 100 is not open: its exit is lost
    assert rows(m.timed_unmatched, ["name", "record", "time", "side", "reason"]) == [
        ("vfs_read", "vfs_read_ret", 50, "exit", "entry missing"),
        ("vfs_read", "vfs_read", 100, "entry", "exit missing"),
        ("net_poll", "net_poll", 300, "entry", "open at end")]


def test_a_ring_that_wrapped_later_makes_earlier_pairs_uncertain(tmp_path):
    # CPU 1's ring only has data from t=1000 (it wrapped): thread 5's exit on CPU 1 at 500 is
    # gone, so its entry at 100 must not swallow the call at 1500..1600 (trace.py: "Nested entry")
    m = model_of(tmp_path, {0: [("vfs_read", 100, 5), ("vfs_read", 150, 6), ("vfs_read_ret", 180, 6),
                                ("vfs_read", 1500, 5), ("vfs_read_ret", 1600, 5)],
                            1: [("net_poll", 1000, 9), ("net_poll_ret", 1100, 9)]}, first_seq={1: 5000})
    assert rows(m.timed, ["tid", "start", "dur", "certain"]) == [
        (6, 150, 30, False), (9, 1000, 100, True), (5, 1500, 100, True)]
    assert rows(m.timed_unmatched, ["tid", "time", "reason"]) == [(5, 100, "exit missing")]


def test_sched_idle_pairs_per_cpu_and_mutex_wait_by_name(tmp_path):
    m = model_of(tmp_path, {0: [("sched_idle", 10, 1), ("sched_idle_ret", 60, 1), ("sched_idle", 80, 1)],
                            1: [("sched_idle", 20, 2), ("mutex_lock_wait", 30, 3, {"mutex": 0xA0}),
                                ("sched_idle_ret", 35, 2), ("mutex_lock_wake", 90, 3, {"mutex": 0xA0})]})
    assert rows(m.timed, ["name", "cpu", "start", "dur"]) == [
        ("sched_idle", 0, 10, 50), ("sched_idle", 1, 20, 15), ("mutex_lock_wait", 1, 30, 60)]
    assert rows(m.timed_unmatched, ["name", "cpu", "reason"]) == [("sched_idle", 0, "open at end")]


def test_a_loss_inside_a_pair_makes_it_uncertain(tmp_path):
    # CPU 1 dropped records at 150 (trace_lost): thread 5's call spanning it may have lost a record
    m = model_of(tmp_path, {0: [("vfs_read", 100, 5), ("vfs_read_ret", 200, 5), ("vfs_read", 300, 5),
                                ("vfs_read_ret", 400, 5)],
                            1: [("net_poll", 90, 9), ("trace_lost", 150, 9, {"count": 3}), ("net_poll_ret", 500, 9)]})
    assert rows(m.timed, ["name", "start", "certain"]) == [
        ("net_poll", 90, False), ("vfs_read", 100, False), ("vfs_read", 300, True)]
