"""The osv commands on real OSv: loader.elf's DWARF, a live VM running /mutexnet (contended
pthread mutex, condvar ping-pong, UDP), and OSv's own scripts/loader.py in the same gdb
session on the same stop as the reference.

Skipped without the OSv source (../shared/osv or $OSV_SRC); failing instead under CI=true.
The first run on a machine builds OSv (~200 s on 2 idle cores; tests/support/osv.py).
"""

from __future__ import annotations

import os
import random
import re
import time

import pytest

from tests.support.osv import OsvVm, build, parse_table

pytestmark = [pytest.mark.qemu, pytest.mark.osv, pytest.mark.usefixtures("no_orphans")]

APP = "/mutexnet 400000 4"  # phase 1 (4 threads on one pthread mutex) runs for tens of seconds under TCG
LOADER_ROW = re.compile(r"^\s*(\d+) \((0x[0-9a-f]+)\) (.{15}) cpu(\S+) (\S+)\s+\S+\s+\d+ ?(.*)$")


@pytest.fixture(scope="module")
def tree():
    return build()


def parse_loader(out: str) -> dict[int, dict[str, str]]:
    rows = {}
    for ln in out.splitlines():
        m = LOADER_ROW.match(ln)
        if m:
            rows[int(m[1])] = {"thread": m[2], "name": m[3].strip(), "cpu": m[4], "state": m[5], "where": m[6]}
    return rows


def stop_contended(vm: OsvVm, limit: float = 180.0) -> str:
    """Interrupt the running VM until `osv mutex all` shows big_lock with waiters (phase 1),
    preferring a stop where it also has an owner (under contention OSv hands the lock over,
    so many stops fall between an unlock and the next owner's store). Runs until it happens,
    up to `limit` seconds: on a loaded host the app reaches phase 1 late."""
    out = ""
    deadline = time.monotonic() + limit
    half = time.monotonic() + limit / 4
    stops = 0
    while time.monotonic() < deadline:
        stops += 1
        vm.gdb.continue_()
        time.sleep(random.uniform(0.3, 1.0))
        vm.gdb.interrupt(30)
        out = vm.osv("osv mutex all")
        if re.search(r"big_lock .*waiters \[\d", out) and (re.search(r"owner \d", out) or time.monotonic() > half):
            return out
    raise AssertionError(f"no contended mutex in {stops} stops over {limit:g} s; last `osv mutex all`:\n{out}\n"
                         f"{vm.console()[-2000:]}")


def boot_app(vm: OsvVm) -> None:
    vm.gdb.continue_()
    vm.console_until("Booted up", timeout=120)
    time.sleep(1.0)
    vm.gdb.interrupt(30)


def test_threads_and_mutex_owner_match_loader_py_on_the_same_stop(tree):
    # with backtraces in the trace records, for `osv trace --stacks` (checked at the end)
    with OsvVm(tree, APP, options=("--trace-backtrace",)) as vm:
        boot_app(vm)
        mutexes = stop_contended(vm)
        t0 = time.perf_counter()
        ours_out = vm.osv("osv info threads")
        ours_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs_out = vm.loader_py("osv_info_threads")
        theirs_s = time.perf_counter() - t0
        ours, theirs = parse_table(ours_out), parse_loader(theirs_out)
        assert theirs, theirs_out
        # The same threads: ids, objects, names, states.
        assert set(ours) == set(theirs), (ours_out, theirs_out)
        for tid, t in theirs.items():
            o = ours[tid]
            assert int(o["thread"], 16) == int(t["thread"], 16), (tid, o, t)
            assert o["name"] == t["name"] or (not t["name"] and o["name"] in ("-", "")), (tid, o, t)
            assert o["state"].rstrip("*") == t["state"], (tid, o, t)
        # The app's frames are named (its symbols were added at its load base): a waiter is
        # `where` the app called pthread_mutex_lock, and its whole stack shows it.
        stacks = vm.osv("osv info threads --stacks")
        assert re.search(r"^  #\d+\s+0x[0-9a-f]+ in contender\+0x[0-9a-f]+ at mutexnet\.c:\d+$", stacks, re.M), stacks

        # The contended mutex: our owner is the lockfree::mutex's owner as gdb evaluates it,
        # and every waiter we list is, in loader.py's view, inside pthread_mutex_lock.
        big = vm.osv("osv mutex big_lock")
        m = re.search(r"owner (\d+|none)", big)
        assert m, big
        owner_expr = "((lockfree::mutex *)*(void **)&big_lock)->owner._M_b._M_p"
        owner = int(vm.gdb.cli(f"output/x {owner_expr}").strip().split()[-1], 16)
        by_addr = {int(t["thread"], 16): tid for tid, t in theirs.items()}
        if owner:
            assert m[1] == str(by_addr[owner]), (big, owner, theirs_out)
        else:
            assert m[1] == "none", big
        head = big.splitlines()[0]  # the stacks follow it
        waiters = [int(x) for x in re.findall(r"(\d+) \(", head.split("waiters [", 1)[1])] if "waiters [" in head else []
        for w in waiters:
            assert "mutex" in theirs[w]["where"] or "lock" in theirs[w]["where"], (w, theirs[w], big)
            assert ours[w]["wait"].startswith("mutex big_lock"), (w, ours[w])
            assert ours[w]["where"].startswith("contender mutexnet.c:"), (w, ours[w], vm.osv("osv info threads --stacks"))
        assert waiters or "waiters [none]" in head, big
        assert "big_lock" in mutexes, mutexes
        # Each waiter's stack is under it: the app function that called pthread_mutex_lock,
        # named from the app's symbols, right after the lock frames.
        for w in waiters:
            block = big.split(f"  waiter {w} (", 1)[1].split("\n  waiter ", 1)[0].split("\n  owner ", 1)[0]
            names = re.findall(r"^\s+#\d+\s+0x[0-9a-f]+ in (\S+?)(?:\+0x[0-9a-f]+)? ", block, re.M)
            k = names.index("contender")
            assert names[k - 1] == "pthread_mutex_lock" and "lockfree::mutex::lock" in names[:k], (w, block)
        assert not re.search(r"^\s+#\d", vm.osv("osv mutex --no-stacks big_lock"), re.M)

        # Trace records with their backtraces (OSv ran with --trace-backtrace), named by gdb:
        # a lock wait's stack reaches the app's contender, at the line that locks.
        recs = vm.osv("osv trace 5 --tp mutex_lock_wait --stacks")
        heads = [ln for ln in recs.splitlines() if "mutex_lock_wait(" in ln]
        assert heads, recs
        assert re.search(r"^    #\d+\s+0x[0-9a-f]+ in pthread_mutex_lock\+0x[0-9a-f]+ at libc/pthread\.cc:\d+\n"
                         r"    #\d+\s+0x[0-9a-f]+ in contender\+0x[0-9a-f]+ at mutexnet\.c:\d+$", recs, re.M), recs
        assert "carry a backtrace: osv trace --stacks shows them" in vm.osv("osv trace 5 --tp mutex_lock_wait")
        print(f"\nosv info threads: ours {ours_s:.2f} s, loader.py {theirs_s:.2f} s, {len(ours)} threads; "
              f"gdb symbol load {vm.symbols_seconds:.1f} s")


COMMANDS = ["osv info threads", "osv runqueue", "osv mutex all", "osv mutex big_lock", "osv memory", "osv percpu 0",
            "osv trace 10", "osv trace 5 --tp mutex* --stacks", "osv trace status", "osv thread apply 1 2 bt 3"]
STOPS = int(os.environ.get("OSVTRACE_OSV_STOPS", "8"))


def test_every_command_runs_clean_at_random_stops(tree):
    rng = random.Random(int(os.environ.get("OSVTRACE_SEED", "0")) or None)
    with OsvVm(tree, APP, options=("--trace-backtrace",)) as vm:  # records with backtraces for --stacks
        # Halted at reset (OSv not loaded, its addresses unmapped): one line each.
        for cmd in COMMANDS:
            out = vm.osv(cmd)
            assert out.startswith("ERROR osv:") and out.count("\n") == 1, (cmd, out)
        boot_app(vm)
        for stop in range(STOPS):
            vm.gdb.continue_()
            time.sleep(rng.uniform(0.01, 0.4))
            vm.gdb.interrupt(30)
            steps = rng.choice([0, 0, 1, 7, 50])
            if steps:
                vm.gdb.cli(f"stepi {steps}", timeout=60)
                if vm.gdb.running or not vm.gdb.stops:
                    vm.gdb.wait_stopped(60)
                vm.gdb.stops.clear()
            regs = vm.gdb.cli("thread apply all info registers rip rsp rbp")
            for cmd in COMMANDS:
                out = vm.osv(cmd)
                assert out.strip(), (stop, cmd)
                if out.startswith("ERROR"):
                    # A command may refuse, in one line, but only for a reason it states.
                    assert out.count("\n") == 1 and "osv:" in out, (stop, cmd, out)
            assert vm.gdb.cli("thread apply all info registers rip rsp rbp") == regs, f"stop {stop}: registers changed"
