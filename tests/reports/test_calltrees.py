"""Call-tree reports (prof, prof-wait, prof-lock) on OSv traces with backtraces: a known call
chain by name, caller and callee order, groups, levels, hold time, bad stacks, and the same
trees as OSv's own scripts/trace.py on the committed real trace."""

from __future__ import annotations

import json
import lzma

import numpy as np
import pytest

import osvtrace
from osvtrace.format.osv_synth import Rec
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.reports import REGISTRY
from osvtrace.reports.registry import options
from tests.support import osv_stacks as S
from tests.support.osv_traces import FIXTURES, fixture, osv_dir, parse_tree, tracepy
from tests.support.vm import osvtrace as run_cli


def tree(model: Model, kind: str, flt: Filter | None = None, **more) -> dict[tuple[str, ...], tuple[int, int]]:
    """A tree report as {path of frames below its root: (count, ns)}; a group's root is the path's first item
    when grouped."""
    spec = REGISTRY[kind]
    r = spec.fn(model, flt or Filter(), options(spec, {"limit": None, **more}))
    par, frame, count = (r.columns[c].tolist() for c in ("parent", "frame", "count"))
    total = r.columns["total"].tolist() if "total" in r.columns else [0] * len(par)
    grouped = more.get("group_by", "none") != "none"
    path: dict[int, tuple[str, ...]] = {}
    out = {}
    for i, p in enumerate(par):
        path[i] = ((frame[i],) if grouped else ()) if p < 0 else path[p] + (frame[i],)
        if path[i]:
            out[path[i]] = (count[i], total[i])
    return out


@pytest.fixture(scope="module")
def osv_story(tmp_path_factory) -> Model:
    return Model(osvtrace.open(S.write(tmp_path_factory.mktemp("story") / "story.tracefile", S.lock_story())))


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Model:
    return Model(osvtrace.open(fixture("mutexnet-bt.tracefile", tmp_path_factory.mktemp("osv"))))


CHAIN = ("a", "b", "c", "pthread_mutex_lock", "lockfree::mutex::lock()")


def test_a_known_call_chain_is_the_waiters_path_by_name_in_prof_lock(osv_story):
    caller = tree(osv_story, "prof-lock", tree="caller")
    assert caller[CHAIN] == (1, 300)  # lock_wait at 110, lock_wake at 410
    assert max(caller, key=len) == CHAIN  # the tracepoint's frame and thread_main are machinery
    callee = tree(osv_story, "prof-lock")
    assert callee[tuple(reversed(CHAIN))] == (1, 300)


def test_prof_lock_json_is_the_nested_tree(tmp_path):
    path = S.write(tmp_path / "t.tracefile", S.lock_story())
    r = run_cli("report", "prof-lock", str(path), "--tree", "caller", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    node, names = doc["tree"][0], []
    while node["children"]:
        (node,) = node["children"]
        names.append(node["frame"])
    assert tuple(names) == CHAIN and node["total"] == 300 and node["addr"] == S.FUNCS[CHAIN[-1]][0]
    assert len(doc["rows"]) == len(CHAIN) + 1 and doc["orientation"] == "caller"


def test_prof_lock_hold_is_hold_time_by_the_holders_stack(osv_story):
    hold = tree(osv_story, "prof-lock", hold=True, tree="caller")
    assert hold[("hold_here", "pthread_mutex_lock", "lockfree::mutex::lock()")] == (1, 350)  # 50 .. 400
    assert hold[CHAIN] == (1, 90)  # the waiter's own hold, 410 .. 500, taken where it waited


def test_prof_wait_takes_the_stack_of_the_record_that_began_the_wait(osv_story):
    w = tree(osv_story, "prof-wait", tree="caller")
    assert w[CHAIN + ("sched::thread::wait()",)] == (1, 285)  # sched_wait 120 .. sched_wait_ret 405


def test_prof_counts_records_by_stack_and_says_how_many_had_none(osv_story):
    spec = REGISTRY["prof"]
    r = spec.fn(osv_story, Filter(), options(spec, {}))
    root = r.columns["count"][0]
    assert root == sum(1 for rec in S.lock_story() if rec.backtrace)
    assert any("have no backtrace" in n for n in r.notes)


def test_group_by_thread_and_lock_split_the_same_total(real):
    whole = tree(real, "prof-lock")
    tops = {k: v for k, v in whole.items() if len(k) == 1}
    total = sum(v[1] for v in tops.values())
    for by in ("thread", "lock", "cpu"):
        g = tree(real, "prof-lock", group_by=by)
        roots = {k: v for k, v in g.items() if len(k) == 1}
        assert sum(v[1] for v in roots.values()) == total, by
        # a frame's time across groups adds up to its time in the whole tree
        for frame, (_, ns) in tops.items():
            assert sum(v[1] for k, v in g.items() if len(k) == 2 and k[1] == frame[0]) == ns


def test_max_levels_and_min_count_prune_the_tree(real):
    full = tree(real, "prof-wait", tree="caller")
    cut = tree(real, "prof-wait", tree="caller", max_levels=2)
    assert cut == {k: v for k, v in full.items() if len(k) <= 2}
    big = tree(real, "prof-wait", min_count=50)
    assert big and all(c >= 50 for c, _ in big.values())


def test_the_waiters_that_called_pthread_mutex_lock_from_pong_on_the_real_trace(real):
    # counted from the raw backtraces and FILE.symbols, not from the model
    t = real.trace
    sym = _symbols(FIXTURES / "mutexnet-bt.tracefile.symbols")
    idx, _ = t.args("mutex_lock_wait")
    bt = t.backtraces(idx) - np.uint64(1)
    lock_at = np.isin(bt, [a for a, n in sym.items() if n == "pthread_mutex_lock"])
    pong_at = np.isin(bt, [a for a, n in sym.items() if n == "pong"])
    lock_col = np.argmax(lock_at, axis=1)
    want = int((lock_at.any(axis=1) & pong_at[np.arange(len(bt)), np.minimum(lock_col + 1, bt.shape[1] - 1)]).sum())
    got = tree(real, "prof-lock")
    assert want and got[("pthread_mutex_lock", "pong")][0] == want


def _symbols(path) -> dict[int, str]:
    out = {}
    for line in path.read_text().splitlines():
        tok = line.split(maxsplit=3)
        out[int(tok[0], 16)] = tok[3]
    return out


# ---------------------------------------------------------------- the same trees as OSv's trace.py

def tracepy_text(name: str) -> str:
    p = FIXTURES / f"mutexnet-bt.tracefile.tracepy-{name}.txt"
    return lzma.decompress(p.with_suffix(".txt.xz").read_bytes()).decode() if not p.exists() else p.read_text()


def same(ours: dict, theirs: dict) -> list[str]:
    """Differences between our tree and trace.py's (its times are printed to 3 digits)."""
    bad = [f"only ours: {k}" for k in ours.keys() - theirs.keys()] + [f"only trace.py: {k}" for k in
                                                                      theirs.keys() - ours.keys()]
    for k in ours.keys() & theirs.keys():
        (oc, ons), (tc, tns) = ours[k], theirs[k]
        if oc != tc or abs(ons - tns) > max(0.006 * ons, 10):
            bad.append(f"{k}: ours {ours[k]}, trace.py {theirs[k]}")
    return bad


@pytest.mark.parametrize("kind,printed,more", [
    ("prof", "prof", {}), ("prof-lock", "prof-lock", {}), ("prof-lock", "prof-lock-r", {"tree": "caller"})])
def test_trees_equal_trace_py_on_the_real_osv_trace(real, kind, printed, more):
    assert same(tree(real, kind, **more), parse_tree(tracepy_text(printed))) == []


def test_prof_wait_equals_trace_py_but_for_waits_before_its_first_sched_wait_ret(real):
    # trace.py learns that sched_wait is timed from the first sched_wait_ret it reads, so a
    # wait that began before that record is not in its tree; ours has it (docs/osv.md)
    ours = tree(real, "prof-wait")
    t = real.trace
    first_ret = t.events.time[t.args("sched_wait_ret")[0]].min()
    timed = real.timed
    early = np.flatnonzero((timed["name"] == "sched_wait") & (timed["start"] < first_ret))
    assert len(early)
    theirs = parse_tree(tracepy_text("prof-wait"))
    for i in early.tolist():
        one = tree(real, "prof-wait", Filter(threads=[str(timed["tid"][i])], since=int(timed["start"][i]),
                                             until=int(timed["start"][i] + timed["dur"][i])))
        leaf = max((k for k in one if one[k][1] >= timed["dur"][i]), key=len)
        for n in range(1, len(leaf) + 1):
            c, ns = theirs.get(leaf[:n], (0, 0))
            theirs[leaf[:n]] = (c + 1, ns + int(timed["dur"][i]))
    assert same(ours, theirs) == []


@pytest.mark.skipif(osv_dir() is None, reason="no OSv tree with scripts/trace.py")
def test_the_committed_trace_py_trees_are_what_trace_py_prints_now(real):
    path = real.trace.path
    for printed, args in (("prof-lock", ()), ("prof-lock-r", ("-r",))):
        assert parse_tree(tracepy(osv_dir(), "prof-lock", path, "-S", *args)) == parse_tree(tracepy_text(printed))


# ---------------------------------------------------------------- bad stacks

def test_bad_stacks_loops_empty_cut_and_unknown_frames_are_shown_never_a_crash(tmp_path):
    f = S.FUNCS
    loop = [f["c"][0], f["b"][0], f["c"][0], f["b"][0], f["c"][0]]
    deep = [f["c"][0]] + [0x5000_0000 + 16 * k for k in range(9)]  # 10 frames: OSv's bound, unknown addresses
    recs = [Rec(S.TPS["sampler_tick"].key, S.WAITER, "w", 10 + k, 0, (), bt) for k, bt in
            enumerate([loop, deep, [], [f["thread_main"][0]], [f["spin"][0]] * 3])]
    model = Model(osvtrace.open(S.write(tmp_path / "bad.tracefile", recs)))
    spec = REGISTRY["prof"]
    r = spec.fn(model, Filter(), options(spec, {"limit": None}))
    notes = " ".join(r.notes)
    assert "1 of 5 samples have no backtrace" in notes
    assert "frames deep, the most a record holds" in notes and "repeat an address" in notes
    frames = set(r.columns["frame"].tolist())
    assert f"{0x5000_0000:#x}" in frames  # an address with no symbol is named by itself
    assert r.columns["count"][0] == 3  # the stack of thread_main alone is all machinery: left out, as trace.py does
    st = model.stack
    assert st["loop"].sum() == 2 and st["cut"].sum() == 1
    for form in ("--json", "--csv"):
        out = run_cli("report", "prof", str(model.trace.path), form)
        # exit 3: done, from a file that is partly wrong (addresses FILE.symbols does not name)
        assert out.returncode == 3 and "not in it" in out.stderr and "Traceback" not in out.stderr
        assert out.stdout.strip()


def test_our_kernels_waits_take_the_stack_of_the_threads_sched_wait(story):
    # our kernel records no sched_wait_ret: waits are thread_state's; give every record a
    # one-frame stack naming the record itself (an address nothing names shows as itself)
    t = story.trace
    t.backtraces = lambda idx: (np.asarray(idx, np.uint64) + np.uint64(0x1000))[:, None]
    ev, wait_id = t.events, t.tracepoint("sched_wait").id
    began = {int(ev.tid[i]): f"{0x1000 + i:#x}" for i in np.flatnonzero(ev.tp == wait_id).tolist()}
    w = tree(story, "prof-wait", group_by="thread")
    ts = story.thread_state
    for tid, frame in began.items():
        blocked = (ts["tid"] == tid) & (ts["state"] == 2)
        label = next(k[0] for k in w if len(k) == 1 and k[0].endswith(f"({tid})"))
        assert w[(label, frame)] == (int(blocked.sum()), int(ts["dur"][blocked].sum()))
    by_lock = {k[0] for k in tree(story, "prof-wait", group_by="lock") if len(k) == 1}
    assert by_lock == {f"object {a:#x}" for a in np.unique(ts["blocked_on"][ts["state"] == 2]).tolist()}
