"""The flame graph's layout and bounds as data (no QEMU, no browser): left edges from a
preorder, highlight intervals merged per lane and joined until they fit the bound."""

from __future__ import annotations

import numpy as np

from osvtrace.viewer.flame import _left_edges, _merge


def test_children_sit_side_by_side_from_their_parents_left_edge():
    # root(10) -> a(6) -> a1(4), a2(2); root -> b(3)   (preorder, heaviest sibling first)
    parent = [-1, 0, 1, 1, 0]
    value = [10, 6, 4, 2, 3]
    assert _left_edges(parent, value) == [0, 0, 0, 4, 6]


def test_overlapping_and_touching_intervals_of_a_lane_merge_but_not_across_lanes():
    lane = np.array([0, 0, 0, 1, 0])
    start = np.array([10, 15, 40, 12, 20])
    end = np.array([20, 18, 50, 13, 25])
    s, e, ln, gap = _merge(lane, start, end, 2)
    assert gap == 0
    assert list(zip(ln.tolist(), s.tolist(), e.tolist())) == [(0, 10, 25), (0, 40, 50), (1, 12, 13)]


def test_too_many_hits_are_joined_across_growing_gaps_until_they_fit():
    t = np.arange(0, 100_000, 10, dtype=np.int64)  # 10,000 instants 10 ns apart
    s, e, ln, gap = _merge(np.zeros(len(t), np.int64), t, t, 1, limit=100)
    assert len(s) <= 100 and gap >= 10
    assert s[0] == 0 and e[-1] == t[-1]  # nothing lost at the ends: joined, not dropped
    assert (s[1:] > e[:-1] + gap).all()  # what stays apart is more than the gap apart
