"""The decoder's compiled loops (osvtrace/format/_decode_loops.pyx, _osv_loops.pyx) against plain numpy answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from osvtrace.format._decode_loops import copy_chunk, merge_runs

from osvtrace.catalog import layout
from osvtrace.format import decode


def _staging(runs: list[np.ndarray], row_type: type) -> decode.Staging:
    """A staging table holding the given sorted runs, CPU k's run in region k."""
    time = np.concatenate(runs) if runs else np.empty(0, np.int64)
    n = len(time)
    starts = np.cumsum([0] + [len(r) for r in runs]).tolist()
    return decode.Staging(time.astype(np.int64), np.arange(n, dtype=row_type) * 3,
                          (np.arange(n) % 1000).astype(np.uint32), (np.arange(n) % 17).astype(np.uint16),
                          dict(enumerate(starts[:-1])), {c: len(r) for c, r in enumerate(runs)})


def _reference(st: decode.Staging) -> tuple[np.ndarray, ...]:
    """Time order by a stable sort of (time, CPU): what the merge must equal."""
    cpus = sorted(c for c in st.count if st.count[c])
    idx = np.concatenate([np.arange(st.start[c], st.start[c] + st.count[c]) for c in cpus]) if cpus else \
        np.empty(0, np.int64)
    cpu = np.concatenate([np.full(st.count[c], c, np.uint16) for c in cpus]) if cpus else np.empty(0, np.uint16)
    order = np.lexsort((cpu, st.time[idx]))
    idx = idx[order]
    return st.time[idx], cpu[order], st.tid[idx], st.tp[idx], st.rows[idx]


# runs of few distinct times, so ties across CPUs are common
sorted_runs = st.lists(hnp.arrays(np.int64, st.integers(0, 300), elements=st.integers(-5, 40)).map(np.sort),
                       min_size=0, max_size=9)


@settings(max_examples=300, deadline=None)
@given(sorted_runs, st.sampled_from([np.int32, np.int64]), st.sampled_from([1, 2]))
def test_merge_equals_a_stable_sort_by_time_then_cpu(runs, row_type, workers):
    st_ = _staging(runs, row_type)
    got = decode.merge(st_, workers)
    for g, want in zip(got, _reference(st_)):
        np.testing.assert_array_equal(g, want)
        assert g.dtype == want.dtype


@pytest.mark.parametrize("ncpus", [1, 2, 3, 8, 64])
def test_merge_of_many_segments_equals_a_stable_sort(ncpus):
    # enough records for many segments, interleaved at random, with ties
    rng = np.random.default_rng(ncpus)
    runs = [np.sort(rng.integers(0, 400_000 // max(1, ncpus // 4), 600_000 // ncpus)) for _ in range(ncpus)]
    st_ = _staging(runs, np.int32)
    for workers in (1, 2, 3):
        for g, want in zip(decode.merge(st_, workers), _reference(st_)):
            np.testing.assert_array_equal(g, want)


@settings(max_examples=300, deadline=None)
@given(sorted_runs, st.randoms(use_true_random=False))
def test_merge_runs_takes_runs_wherever_they_lie_in_staging(runs, rnd):
    # run r may lie anywhere in the staging table (here: regions shuffled); ties go to the lower run
    order = list(range(len(runs)))
    rnd.shuffle(order)
    placed = [runs[r] for r in order]
    st_ = _staging(placed, np.int64)
    lo = np.array([st_.start[order.index(r)] for r in range(len(runs))], np.int64)
    hi = lo + np.array([len(r) for r in runs], np.int64)
    n = int(sum(len(r) for r in runs))
    outs = (np.empty(n, np.int64), np.empty(n, np.uint16), np.empty(n, np.uint32), np.empty(n, np.uint16),
            np.empty(n, np.int64))
    cpu = np.arange(len(runs), dtype=np.uint16) + 3
    merge_runs(st_.time, st_.tid, st_.tp, st_.rows, lo, hi, cpu, *outs)
    idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)] or [np.empty(0, np.int64)]).astype(np.int64)
    run = np.concatenate([np.full(len(r), k) for k, r in enumerate(runs)] or [np.empty(0, np.int64)])
    want = idx[np.lexsort((run, st_.time[idx]))]
    np.testing.assert_array_equal(outs[0], st_.time[want])
    np.testing.assert_array_equal(outs[4], st_.rows[want])
    np.testing.assert_array_equal(outs[1], cpu[run[np.lexsort((run, st_.time[idx]))]])


def test_merge_runs_refuses_mismatched_arguments():
    t = np.arange(10, dtype=np.int64)
    cols = (t, np.zeros(10, np.uint32), np.zeros(10, np.uint16), np.zeros(10, np.int32))

    def outs(n):
        return (np.empty(n, np.int64), np.empty(n, np.uint16), np.empty(n, np.uint32), np.empty(n, np.uint16),
                np.empty(n, np.int32))

    lo, hi, cpu = np.array([0, 5]), np.array([5, 10]), np.array([0, 1], np.uint16)
    with pytest.raises(ValueError, match="hold the runs' 10"):
        merge_runs(*cols, lo, hi, cpu, *outs(9))
    with pytest.raises(ValueError, match="outside"):
        merge_runs(*cols, lo, np.array([5, 11]), cpu, *outs(11))
    with pytest.raises(ValueError, match="at most 64"):
        merge_runs(*cols, np.zeros(65, np.int64), np.zeros(65, np.int64), np.zeros(65, np.uint16), *outs(0))


def _slots(ids: np.ndarray, nslots: np.ndarray, tsc: np.ndarray, flags: np.ndarray | int = 0) -> np.ndarray:
    s = np.zeros(len(ids), layout.SLOT_DTYPE)
    s["id"], s["nslots"], s["tsc"], s["flags"] = ids, nslots, tsc, flags
    s["tid"] = np.arange(len(ids), dtype=np.uint32) * 7 + 0xFFFF0000
    return s


def _framing_oracle(ids: np.ndarray, nsl: np.ndarray, nslots_of: np.ndarray, flags: np.ndarray | None = None,
                    stack_of: np.ndarray | None = None) -> tuple[np.ndarray, int, int]:
    """The framing rules written as whole-array numpy (the decoder's earlier form):
    (header positions of whole records, partial slots, invalid slots). A header flagged
    FLAG_STACK may have 1..stack_of[id] slots more than its tracepoint's (the stack trailer)."""
    count = len(ids)
    n = nsl.astype(np.int64)
    flags = np.zeros(count, np.uint8) if flags is None else flags
    stack_of = STACK_OF if stack_of is None else stack_of
    is_cont = ids == layout.ID_CONT
    pos = np.arange(count)
    fixed = nslots_of[ids].astype(np.int64)
    stacked = (flags & layout.FLAG_STACK) != 0
    fits = np.where(stacked, (fixed < n) & (n <= fixed + stack_of[ids]), fixed == n)
    framed = ~is_cont & (ids != layout.ID_EMPTY) & (fixed > 0) & fits & (n > 0)
    valid = framed & (pos + n <= count)
    for i in np.nonzero(valid)[0]:
        k = np.arange(1, n[i])
        valid[i] = bool(((ids[i + k] == layout.ID_CONT) & (nsl[i + k] == k)).all())
    inside = np.zeros(count, bool)
    for i in np.nonzero(valid)[0]:
        inside[i:i + n[i]] = True
    partial = np.zeros(count, bool)
    lead = np.nonzero(~(is_cont & ~inside))[0]
    partial[:lead[0] if len(lead) else count] = True
    cut = framed & (pos + n > count)
    if cut.any():
        partial[int(np.argmax(cut)):] = True
    partial &= ~inside
    return np.nonzero(valid)[0], int(partial.sum()), int((~inside & ~partial).sum())


# a catalog of ids 1 (one slot), 2 (two slots), 3 (three slots); 0 is empty, 9 unknown
NSLOTS_OF = np.zeros(0x10000, np.uint8)
NSLOTS_OF[[1, 2, 3]] = [1, 2, 3]
# ids 1 and 2 may carry a stack trailer of up to 2 slots; 3 never does
STACK_OF = np.zeros(0x10000, np.uint8)
STACK_OF[[1, 2]] = 2
slot_kinds = st.lists(st.tuples(st.sampled_from([0, 1, 2, 3, 9, layout.ID_CONT]), st.integers(0, 5),
                                st.sampled_from([0, 0, 0, layout.FLAG_STACK])),
                      min_size=0, max_size=60)


def _run_copy(slots: np.ndarray, nslots_of: np.ndarray, tsc_base: int = 0, ns_per_tick: float = 1.0,
              row: int = 0, pos: int = 0) -> tuple[tuple, tuple[np.ndarray, ...]]:
    n = len(slots) - row
    cols = (np.full(pos + n, -1, np.int64), np.zeros(pos + n, np.uint32), np.zeros(pos + n, np.uint16),
            np.full(pos + n, -1, np.int64))
    got = copy_chunk(slots.view(np.uint64).reshape(-1, 4), row, n, nslots_of, STACK_OF, tsc_base, ns_per_tick,
                     *cols, pos)
    return got, tuple(c[pos:pos + got[0]] for c in cols)


@settings(max_examples=500, deadline=None)
@given(slot_kinds, st.booleans())
def test_copy_chunk_keeps_whole_records_and_counts_every_other_slot_like_the_framing_rules(kinds, well_formed):
    if well_formed:  # mostly whole records, so the copying path is exercised as much as the counting
        kinds = [(k, 1, f if k in (1, 2) else 0) for k, _, f in kinds]
        for i, (k, _, f) in enumerate(kinds):
            if k in (1, 2, 3):
                w = k + (1 if f else 0)  # a stacked record: one trailer slot more
                kinds[i] = (k, w, f)
                kinds[i + 1:i + w] = [(layout.ID_CONT, j, 0) for j in range(1, w)][:len(kinds) - i - 1]
    ids = np.array([k for k, _, _ in kinds], np.uint16)
    nsl = np.array([n for _, n, _ in kinds], np.uint8)
    flags = np.array([f for _, _, f in kinds], np.uint8)
    slots = _slots(ids, nsl, np.arange(len(ids), dtype=np.uint64) * 10, flags)
    (taken, ordered, partial, invalid), (time, tid, tp, rows) = _run_copy(slots, NSLOTS_OF)
    heads, want_partial, want_invalid = _framing_oracle(ids, nsl, NSLOTS_OF, flags)
    assert (taken, partial, invalid) == (len(heads), want_partial, want_invalid)
    assert ordered
    assert rows.tolist() == heads.tolist()
    assert time.tolist() == (heads * 10).tolist()
    np.testing.assert_array_equal(tp, ids[heads])
    np.testing.assert_array_equal(tid, slots["tid"][heads])
    # every slot is in a copied record, or counted once
    assert sum(int(nsl[h]) for h in heads) + partial + invalid == len(ids)


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.uint64, st.integers(1, 200), elements=st.integers(0, 2**64 - 1)),
       st.integers(0, 2**63 - 1), st.sampled_from([1.0, 0.3846153846, 2.5, 1e9]), st.integers(0, 5))
def test_copy_chunk_converts_times_like_numpy(tsc, tsc_base, ns_per_tick, row):
    n = len(tsc)
    slots = np.concatenate([np.zeros(row, layout.SLOT_DTYPE), _slots(np.full(n, 1, np.uint16), np.ones(n, np.uint8), tsc)])
    (taken, ordered, _, _), (time, tid, tp, rows) = _run_copy(slots, NSLOTS_OF, tsc_base, ns_per_tick, row, pos=1)
    t = tsc.view(np.int64)
    with np.errstate(all="ignore"):
        want = np.empty(n, np.int64)
        if ns_per_tick == 1.0:
            np.subtract(t, tsc_base, out=want)
        else:
            np.multiply(t - tsc_base, ns_per_tick, out=want, casting="unsafe")
    assert taken == n
    np.testing.assert_array_equal(time, want)
    assert ordered == bool((want[1:] >= want[:-1]).all())
    np.testing.assert_array_equal(tid, slots["tid"][row:])
    assert (tp == 1).all() and rows.tolist() == list(range(row, row + n))


def test_copy_chunk_refuses_ranges_outside_its_arrays():
    slots = _slots(np.full(4, 1, np.uint16), np.ones(4, np.uint8), np.arange(4, dtype=np.uint64))
    words = slots.view(np.uint64).reshape(-1, 4)
    cols = np.zeros(4, np.int64), np.zeros(4, np.uint32), np.zeros(4, np.uint16), np.zeros(4, np.int32)
    with pytest.raises(ValueError, match="slots"):
        copy_chunk(words, 2, 3, NSLOTS_OF, STACK_OF, 0, 1.0, *cols, 0)
    with pytest.raises(ValueError, match="staging"):
        copy_chunk(words, 0, 4, NSLOTS_OF, STACK_OF, 0, 1.0, *cols, 1)
    with pytest.raises(ValueError, match="every 16-bit id"):
        copy_chunk(words, 0, 4, NSLOTS_OF[:10], STACK_OF, 0, 1.0, *cols, 0)
    with pytest.raises(ValueError, match="every 16-bit id"):
        copy_chunk(words, 0, 4, NSLOTS_OF, STACK_OF[:10], 0, 1.0, *cols, 0)


# ---------------------------------------------------------------- OSv's gather_rows, id_mask

@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=200), st.lists(st.integers(-4, 210), max_size=30), st.integers(0, 12))
def test_gather_rows_copies_each_rows_bytes_and_leaves_what_lies_outside_as_zero(data, pos, width):
    from osvtrace.format._osv_loops import gather_rows

    buf = np.frombuffer(data, np.uint8)
    out = np.zeros((len(pos), width), np.uint8)
    gather_rows(buf, np.array(pos, np.int64), out)
    want = np.array([[data[p + k] if 0 <= p + k < len(data) else 0 for k in range(width)] for p in pos],
                    np.uint8).reshape(len(pos), width)
    assert np.array_equal(out, want)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.uint16, st.integers(0, 300), elements=st.integers(0, 40)),
       st.lists(st.integers(0, 60), max_size=9))
def test_id_mask_is_isin(col, ids):
    from osvtrace.format.base import id_mask

    assert np.array_equal(id_mask(col, ids), np.isin(col, np.array(ids, np.int64)))
