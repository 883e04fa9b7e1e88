"""Shared fixtures: small hand-built traces with known contents."""

from __future__ import annotations

import pytest

from osvtrace.catalog.schema import default_catalog
from osvtrace.format.encode import CpuStreamBuilder
from tests.support.traces import M, Q, small_trace_file, write_trace
from tests.support.vm import kernel, no_orphans  # noqa: F401  (fixtures for every test module)


@pytest.fixture
def catalog():
    return default_catalog()


@pytest.fixture
def small_trace(tmp_path):
    """Two CPUs: a thread_create (2 slots), a switch, a hand-off and a packet (6 slots)."""
    return small_trace_file(tmp_path / "small.osvt")


@pytest.fixture
def story_file(tmp_path, catalog):
    """main(1) starts a(2) and b(3); b waits for mutex M held by a; a hands it over; idle is 9.
    b's CPU began mid-slice; CPU 1 dropped 5 records; thread 4 never ran."""
    c0 = CpuStreamBuilder(catalog)
    c0.add("thread_create", [100], 1, tid=2, name="a")
    c0.add("thread_create", [110], 1, tid=3, name="b")
    c0.add("sched_switch", [200], 1, next=2, prev_state=1)
    c0.add("mutex_lock", [210], 2, mutex=M)
    c0.add("sched_wake", [300], 2, tid=3, cpu=1)
    c0.add("mutex_unlock", [400], 2, mutex=M)
    c0.add("mutex_handoff", [401], 2, mutex=M, from_tid=2, to_tid=3)
    c0.add("sched_wait", [500], 2, obj=Q)
    c0.add("sched_switch", [510], 2, next=1, prev_state=2)
    c0.add("trace_marker", [700], 1, value=1, label="end")
    c1 = CpuStreamBuilder(catalog)
    c1.add("mutex_lock", [150], 3, mutex=M)
    c1.add("mutex_lock_wait", [160], 3, mutex=M)
    c1.add("sched_wait", [170], 3, obj=M)
    c1.add("sched_switch", [180], 3, next=9, prev_state=2)
    c1.add("sched_switch", [305], 9, next=3, prev_state=1)
    c1.add("mutex_lock_wake", [450], 3, mutex=M)
    c1.add("trace_lost", [455], 3, count=5)
    c1.add("mutex_unlock", [460], 3, mutex=M)
    c1.add("trace_marker", [800], 3, value=2, label="end")
    path = write_trace(tmp_path / "story.osvt", {0: c0.slots(), 1: c1.slots()},
                       threads={1: "main", 4: "never-ran", 9: "idle1"}, lost={1: 5})
    return path


@pytest.fixture
def story(story_file):
    import osvtrace
    from osvtrace.model import Model

    return Model(osvtrace.open(story_file))


# The first test marked osv waits for the OSv build (~200 s on 2 idle cores, 8 min and more while
# the rest of the suite loads them) inside its fixture, which pytest-timeout counts as the test's.
OSV_TIMEOUT = 1500


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need real OSv run last, giving its background build (below) the most time."""
    items.sort(key=lambda item: item.get_closest_marker("osv") is not None)  # stable: order kept otherwise
    for item in items:
        if item.get_closest_marker("osv") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(OSV_TIMEOUT))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Real OSv is built once per machine (~200 s): when the session has tests marked `osv`,
    the build starts now, in the background, so it overlaps the tests before them."""
    if any(item.get_closest_marker("osv") for item in session.items):
        from tests.support.osv import prebuild_in_background

        prebuild_in_background()
