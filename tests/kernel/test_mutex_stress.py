"""Stress (slow): the lock-free mutex under real parallelism, 4 vCPUs on multi-threaded TCG.

16 threads, 3 mutexes, 1 M lock/unlock in total per run, 20 runs: zero lost updates and no
mutual-exclusion violation (the app checks both), no deadlock and no lost wake-up (either
would hang a waiter forever: every run must end within its timeout). Run with
`pytest -m slow tests/kernel/test_mutex_stress.py` (or `make test-slow`).
"""

from __future__ import annotations

import pytest

from tests.support.apps import boot, parse_kv

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.usefixtures("no_orphans")]

THREADS, MUTEXES, TOTAL = 16, 3, 1_000_000


@pytest.mark.parametrize("run", range(20))
def test_mutex_stress_4_vcpus_multi_threaded_tcg(kernel, run):
    b = boot(kernel, "mutex", "--threads", str(THREADS), "--mutexes", str(MUTEXES), "--iterations",
             str(TOTAL // THREADS), "--trylock", "5", "--hold-ns", str(100 * (run % 4)), smp=4, tcg="multi",
             timeout=240)
    assert b.app_status == 0, b.console[-3000:]
    kv = parse_kv(b.line("mutex: acquisitions="))
    assert int(kv["acquisitions"]) == TOTAL
    assert kv["lost_updates"] == "0" and kv["violations"] == "0"


@pytest.mark.parametrize("run", range(5))
def test_condvar_stress_4_vcpus(kernel, run):
    b = boot(kernel, "condvar", "--producers", "4", "--consumers", "4", "--items", "50000", "--capacity", "3",
             smp=4, tcg="multi", timeout=240)
    assert b.app_status == 0, b.console[-3000:]
    kv = parse_kv(b.line("condvar: "))
    assert kv["consumed"] == kv["produced"] and kv["sum_ok"] == "1"
