"""The kernel's lock-free mutex and condvar (kernel/lib/lfmutex.hh, lfcondvar.hh), built for the
host and run with std::thread under ThreadSanitizer (tests/native/mutex_host.cc).

The critical sections use plain counters, so a missing happens-before edge in the algorithm
is a reported data race; a lost update fails the count; a lost wake-up hangs (timeout).
"""

from __future__ import annotations

import subprocess

import pytest

from tests.support.native import NATIVE, ROOT, build

TSAN = ("-std=c++20", f"-I{ROOT / 'kernel'}", "-fsanitize=thread", "-O1")


@pytest.fixture(scope="module")
def tsan_driver(tmp_path_factory):
    out = tmp_path_factory.mktemp("native") / "mutex_host_tsan"
    return build(NATIVE / "mutex_host.cc", out, *TSAN)


@pytest.fixture(scope="module")
def fast_driver(tmp_path_factory):
    out = tmp_path_factory.mktemp("native") / "mutex_host"
    return build(NATIVE / "mutex_host.cc", out, "-std=c++20", f"-I{ROOT / 'kernel'}")


def run(driver, *args: str, timeout: float = 120) -> dict[str, int]:
    env = {"TSAN_OPTIONS": "halt_on_error=1 second_deadlock_stack=1"}
    try:
        r = subprocess.run([str(driver), *args], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mutex_host {' '.join(args)} hung for {timeout} s: a lost wake-up or a deadlock")
    assert r.returncode == 0, f"mutex_host {' '.join(args)} failed:\n{r.stdout}\n{r.stderr[-4000:]}"
    assert "WARNING: ThreadSanitizer" not in r.stderr, r.stderr[-4000:]
    words = r.stdout.split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}


@pytest.mark.parametrize("threads, mutexes, tries", [(2, 1, 0), (8, 1, 0), (8, 3, 20), (16, 2, 50)])
def test_exclusion_and_handoff_accounting_under_tsan(tsan_driver, threads, mutexes, tries):
    s = run(tsan_driver, "exclusion", str(threads), str(mutexes), "5000", str(tries))
    assert s["lost_updates"] == 0 and s["violations"] == 0
    # every queued waiter is handed the mutex exactly once, and the hooks (tracepoints) agree
    assert s["handed"] == s["handoffs"] == s["lock_wakes"] == s["lock_waits"]
    if threads > 2:
        assert s["handoffs"] > 0


def test_recursive_and_try_lock_under_tsan(tsan_driver):
    s = run(tsan_driver, "recursive", "5000")
    assert s["counter"] == s["acquisitions"]


@pytest.mark.parametrize("producers, consumers", [(1, 1), (3, 2), (2, 5)])
def test_condvar_bounded_queue_under_tsan(tsan_driver, producers, consumers):
    s = run(tsan_driver, "condvar", str(producers), str(consumers), "3000")
    assert s["consumed"] == producers * 3000 and s["sum"] == s["expected"]


def test_many_threads_native_speed(fast_driver):
    """Without the sanitizer the interleavings differ (and there are far more of them)."""
    s = run(fast_driver, "exclusion", "16", "2", "100000", "10")
    assert s["lost_updates"] == 0 and s["violations"] == 0 and s["handed"] == s["handoffs"]
