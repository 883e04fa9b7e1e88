"""Stacks as columns: interning distinct backtraces (whatever the padding, even after a hash
collision), per-event stack ids read per tracepoint, and bad stacks flagged."""

from __future__ import annotations

import numpy as np
import pytest

import osvtrace
from osvtrace.model import Model
from osvtrace.model import stacks as stacks_mod
from osvtrace.model.stacks import NO_STACK, Stacks
from tests.support import osv_stacks as S
from tests.support.osv_traces import fixture


class _NoTrace:
    """Interning needs no trace: only the kernel's depth bound, unknown here."""

    kernel = "osvtrace"


def rows(*stacks: list[int], width: int = 6) -> np.ndarray:
    out = np.zeros((len(stacks), width), np.uint64)
    for i, s in enumerate(stacks):
        out[i, :len(s)] = s
    return out


def test_equal_stacks_share_an_id_whatever_their_padding():
    st = Stacks(_NoTrace())
    a = st.intern(rows([1, 2, 3], [4, 5], [1, 2, 3], [], width=4))
    b = st.intern(rows([4, 5], [1, 2, 3], [1, 2], width=10))
    assert a[0] == a[2] == b[1] and a[1] == b[0] and a[3] == NO_STACK
    assert len({int(a[0]), int(a[1]), int(b[2])}) == 3 and len(st) == 3
    assert st.frames[a[0]].tolist()[:4] == [1, 2, 3, 0]


def test_a_zero_ends_a_stack():
    st = Stacks(_NoTrace())
    ids = st.intern(rows([7, 8, 0, 9], [7, 8]))
    assert ids[0] == ids[1] and st.depth().tolist() == [2]


def test_a_hash_collision_still_keeps_stacks_apart(monkeypatch):
    monkeypatch.setattr(stacks_mod, "_HASH_MASK", np.uint64(0))  # every stack hashes to 0
    st = Stacks(_NoTrace())
    a = st.intern(rows([1, 2], [3], [1, 2]))
    b = st.intern(rows([3], [5, 6], [1, 2]))
    assert a[0] == a[2] == b[2] and a[1] == b[0] and len({int(a[0]), int(a[1]), int(b[1])}) == 3
    assert [st.frames[i][st.frames[i] != 0].tolist() for i in (a[0], a[1], b[1])] == [[1, 2], [3], [5, 6]]


def _reference_ids(bt: np.ndarray) -> np.ndarray:
    """Stack ids as plain numpy numbers them: rows after their first 0 zeroed, np.unique over
    rows, ids in order of first appearance, NO_STACK for a row with no frame."""
    live = np.cumprod(bt != 0, axis=1).astype(bool)
    bt = np.where(live, bt, np.uint64(0))
    has = bt[:, 0] != 0
    _, first, inv = np.unique(bt[has], axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int32)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    out = np.full(len(bt), NO_STACK, np.int32)
    out[has] = rank[inv.reshape(-1)]
    return out


@pytest.mark.parametrize("mask", [2**64 - 1, 0])
def test_many_stacks_intern_as_plain_numpy_does_across_growth_and_collisions(monkeypatch, mask):
    monkeypatch.setattr(stacks_mod, "_HASH_MASK", np.uint64(mask))  # 0: every stack in one probe chain
    rng = np.random.default_rng(7)
    pool = rng.integers(1, 40, (3000, 8)).astype(np.uint64)  # more than the first table holds
    pool[rng.random(pool.shape) < 0.1] = 0
    sample = pool[rng.integers(0, len(pool), 20_000)]
    st = Stacks(_NoTrace())
    ids = np.concatenate([st.intern(part) for part in np.array_split(sample, 3)])  # three calls, one table
    assert np.array_equal(ids, _reference_ids(sample))
    has = ids != NO_STACK
    live = np.cumprod(sample != 0, axis=1).astype(bool)
    assert np.array_equal(st.frames[ids[has]], np.where(live, sample, np.uint64(0))[has])


def test_the_real_trace_interned_where_it_lies_equals_plain_numpy_on_its_frame_matrix(tmp_path_factory):
    t = osvtrace.open(fixture("mutexnet-bt.tracefile", tmp_path_factory.mktemp("osv")))
    ev = np.arange(len(t))
    bt = t.backtraces(ev)
    st = Stacks(t)
    ids = st.intern_words(*t.backtrace_words(ev))  # straight from the file's bytes
    assert np.array_equal(ids, _reference_ids(bt))
    has = ids != NO_STACK
    assert np.array_equal(st.frames[ids[has]], bt[has])  # the frames themselves, as read by backtraces()
    assert np.array_equal(Stacks(t).intern(bt), ids)  # the matrix path (our kernel's traces) agrees


def test_loops_and_cut_stacks_are_flagged(tmp_path):
    f = S.FUNCS
    recs = [S.Rec(S.TPS["sampler_tick"].key, S.WAITER, "w", 10 + k, 0, (), bt) for k, bt in enumerate(
        [[f["c"][0], f["b"][0], f["c"][0]], [f["a"][0] + 16 * k for k in range(10)], [f["a"][0]]])]
    m = Model(osvtrace.open(S.write(tmp_path / "t.tracefile", recs)))
    st = m.stack
    by_depth = {int(d): (bool(c), bool(lp)) for d, c, lp in zip(st["depth"], st["cut"], st["loop"])}
    assert by_depth == {3: (False, True), 10: (True, False), 1: (False, False)}  # OSv holds 10 frames


def test_event_stack_ids_are_the_events_backtraces(tmp_path_factory):
    m = Model(osvtrace.open(fixture("mutexnet-bt.tracefile", tmp_path_factory.mktemp("osv"))))
    t = m.trace
    idx, _ = t.args("mutex_lock_wait")
    ids = m.stacks.ids(idx)
    bt = t.backtraces(idx)
    w = min(bt.shape[1], m.stacks.frames.shape[1])
    assert (ids != NO_STACK).all()
    assert np.array_equal(m.stacks.frames[ids][:, :w], bt[:, :w])
    es = m.event_stack
    assert len(es) == int((t.backtraces(np.arange(len(t)))[:, 0] != 0).sum())
    sf = m.stack_frame  # one row per frame of each distinct stack, named
    assert len(sf) == int((m.stacks.frames != 0).sum())
    assert "pthread_mutex_lock" in set(sf["function"].tolist())


def test_stack_tables_answer_sql(tmp_path):
    from osvtrace.query.sql import query

    m = Model(osvtrace.open(S.write(tmp_path / "t.tracefile", S.lock_story())))
    out = query(m, "select f.function, count(*) as n from event_stack e join stack_frame f using (stack_id) "
                   "where f.level = 3 group by 1 order by 1").to_pydict()
    name = {addr: fn for fn, (addr, _) in S.FUNCS.items()}
    want: dict[str, int] = {}
    for r in S.lock_story():
        if len(r.backtrace) > 3:
            want[name[r.backtrace[3]]] = want.get(name[r.backtrace[3]], 0) + 1
    assert dict(zip(out["function"], out["n"])) == want
