"""Real OSv traces through the model: OSv's records become osvtrace's tracepoints by the rules
in osvtrace/kernels/osv.py, so every table and report works on them (checked on the committed
real dumps of both file formats)."""

from __future__ import annotations

import numpy as np
import pytest

import osvtrace
from osvtrace.model import Model
from osvtrace.model.kernel_map import kernel_of, model_events
from tests.support.osv_traces import fixture

FILES = ("mutexnet-bt.tracefile", "mutexnet-rest.dump")


@pytest.fixture(scope="module", params=FILES)
def osv_trace(request, tmp_path_factory):
    t = osvtrace.open(fixture(request.param, tmp_path_factory.mktemp("osv")))
    yield t
    t.close()


def _records(t, *names: str) -> np.ndarray:
    ids = [tp.id for tp in t.catalog.tracepoints if tp.name in names]
    return np.nonzero(np.isin(t.events.tp, ids))[0]


def test_an_osv_trace_is_read_through_osvs_rules_and_ours_as_it_is(osv_trace, story_file):
    assert kernel_of(osv_trace).name == "osv"
    with osvtrace.open(story_file) as ours:
        assert kernel_of(ours).name == "osvtrace"
        idx, a = model_events(ours, "sched_switch")
        ref_idx, ref = ours.args("sched_switch")
        assert (idx == ref_idx).all() and (a["next"] == ref["next"]).all()


def test_a_switched_to_thread_is_the_one_that_runs_next_on_that_cpu(osv_trace):
    # the pointer in OSv's sched_switch becomes the id of the thread whose records follow on that
    # CPU (after what reschedule_from_interrupt still records as the outgoing thread once it chose:
    # sched_queue for a yield, sched_idle / sched_idle_ret, sched_load)
    ev = osv_trace.events
    idx, a = model_events(osv_trace, "sched_switch")
    after = ("sched_queue", "sched_idle", "sched_idle_ret", "sched_load")
    load = [tp.id for tp in osv_trace.catalog.tracepoints if tp.name in after]
    checked = agree = 0
    for cpu in np.unique(ev.cpu[idx]).tolist():
        on = np.nonzero((ev.cpu == cpu) & ~np.isin(ev.tp, load))[0]
        mine = ev.cpu[idx] == cpu
        sw = np.searchsorted(on, idx[mine])
        follow = sw + 1 < len(on)
        checked += int(follow.sum())
        agree += int((ev.tid[on[sw[follow] + 1]] == a["next"][mine][follow]).sum())
    assert checked > 500 and agree == checked, (agree, checked)


def test_switch_states_follow_osvs_preempt_and_wait_records(osv_trace):
    idx, a = model_events(osv_trace, "sched_switch")
    ev = osv_trace.events
    state = a["prev_state"]
    assert set(np.unique(state).tolist()) <= {1, 2} and (state == 1).any() and (state == 2).any()
    # every switch right after the same thread's sched_preempt leaves it runnable
    pre = _records(osv_trace, "sched_preempt")
    pos = np.searchsorted(pre, idx) - 1
    ok = pos >= 0
    right_after = np.zeros(len(idx), bool)
    right_after[ok] = (ev.tid[pre[pos[ok]]] == ev.tid[idx[ok]]) & (idx[ok] - pre[pos[ok]] <= 2)
    assert right_after.sum() > 50 and (state[right_after] == 1).all()


def test_mutex_tables_count_what_osv_recorded(osv_trace):
    m = Model(osv_trace)
    waits, holds, hand = m.mutex_wait, m.mutex_hold, m.handoff
    assert len(waits) == len(_records(osv_trace, "mutex_lock_wait"))
    # every acquisition is a hold: uncontended lock()s, wakes, received locks, successful try_locks
    assert len(holds) >= len(_records(osv_trace, "mutex_lock_wake", "mutex_receive_lock"))
    assert len(hand) and (hand["from_tid"] != hand["to_tid"]).all() and (hand["latency"] >= 0).all()
    assert (waits["handed_by"] > 0).mean() > 0.9


def test_what_a_thread_blocks_on_is_its_last_mutex_or_condvar_wait(osv_trace):
    idx, a = model_events(osv_trace, "sched_wait")
    objs = {int(x) for x in osvtrace_args(osv_trace, ("mutex_lock_wait", "condvar_wait"))}
    named = a["obj"][a["obj"] != 0]
    assert len(named) and {int(x) for x in np.unique(named)} <= objs


def osvtrace_args(t, names) -> np.ndarray:
    out = []
    for tp in t.catalog.tracepoints:
        if tp.name in names:
            i = np.nonzero(t.events.tp == tp.id)[0]
            out.append(t.args_at(tp, i)["a0"])
    return np.concatenate(out) if out else np.empty(0, np.uint64)


@pytest.mark.parametrize("kind", ["sched", "wakeup", "cpu", "mutex", "lhp", "prof-wait", "prof-lock"])
def test_every_scheduler_and_mutex_report_has_rows_on_a_real_osv_trace(osv_trace, kind):
    from osvtrace.reports import REGISTRY, registry

    spec = REGISTRY[kind]
    r = registry.run(spec, Model(osv_trace), registry.make_filter({}), registry.options(spec, {}))
    assert len(r) > 0, kind
