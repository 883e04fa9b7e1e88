"""Text timelines: bucket arithmetic and the drawing of the story trace (known answers)."""

from __future__ import annotations

import numpy as np
import pytest

from osvtrace.errors import UsageError
from osvtrace.shell import timeline as tl


def test_coverage_splits_intervals_at_bucket_edges():
    start, dur = np.array([0, 10]), np.array([5, 10])  # [0,5) and [10,20)
    assert tl.coverage(start, dur, np.array([0, 4, 8, 12, 30])).tolist() == [4, 1, 2, 8]
    assert tl.coverage(start[:0], dur[:0], np.array([0, 10, 20])).tolist() == [0, 0]
    # a window that starts inside an interval and ends before the next one
    assert tl.coverage(start, dur, np.array([3, 7, 9])).tolist() == [2, 0]


def test_story_timeline_by_cpu_and_by_thread(story):
    targets = tl.resolve_targets(story.trace, ["cpu0", "cpu", "1", "a", "b", "never-ran"])
    assert [(t.kind, t.id) for t in targets] == [("cpu", 0), ("cpu", 1), ("thread", 2), ("thread", 3),
                                                 ("thread", 4)]
    lines = tl.draw(story, targets, 100, 800, 14)
    assert lines == [
        "              700ns in 14 buckets of 50ns",
        "cpu0          │████████████  │",
        "              │aabbbbbbaaaa  │",
        "cpu1          │ ▅  ▇█████████│",
        "              │ c  cccccccccc│",
        "a             │  ██████▒▒▒▒▒▒│",  # runs 200-510 on cpu0, then waits on Q
        "b             │ █▒▒██████████│",  # ran mid-slice at 150, waits for M, runs from 305
        "never-ran     │              │",
        "              └────────┬─────┘",
        "                       500ns",
        "states: █ running  ▓ runnable  ▒ waiting  ░ sleeping  × dead",
        "threads: a=main  b=a  c=b",
    ]


def test_colours_are_one_escape_per_run(story):
    lines = tl.draw(story, tl.resolve_targets(story.trace, ["a"]), 100, 800, 14, color=True)
    assert lines[1] == "a             │  \x1b[32m██████\x1b[0m\x1b[31m▒▒▒▒▒▒\x1b[0m│"


def test_axis_ticks_are_round_times():
    tick, labels = tl.axis(tl.edges(0, 84_000_000, 80))
    assert tick.count("┬") == 9 and labels.split() == [f"{k}ms" for k in range(0, 90, 10)]
    assert tl._label(5_000_010_000, 10_000, 5_000_020_000) == "5.00001s"


def test_unknown_targets_are_usage_errors(story):
    with pytest.raises(UsageError, match="CPUs 0..1"):
        tl.resolve_targets(story.trace, ["cpu5"])
    with pytest.raises(UsageError, match="no thread"):
        tl.resolve_targets(story.trace, ["nobody"])


def test_cpus_and_threads_keywords(story):
    kinds = lambda words, **kw: [(t.kind, t.id) for t in tl.resolve_targets(story.trace, words, **kw)]  # noqa: E731
    assert kinds(["cpus"]) == [("cpu", 0), ("cpu", 1)]
    assert kinds(["CPUs"], cpus=[1]) == [("cpu", 1)]
    assert kinds(["threads"]) == [("thread", t) for t in (1, 2, 3, 4, 9)]
    assert kinds(["threads", "cpu1"], threads=[3]) == [("thread", 3), ("cpu", 1)]
