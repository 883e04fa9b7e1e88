"""`osvtrace gdb`: boots the kernel halted and hands the terminal to gdb, attached, with
the osv commands. Batch mode from a script, and a person at a real terminal (tmux):
breakpoints, Ctrl-C stopping the VM (not osvtrace or QEMU), leaving gdb ending the VM."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.support.gdb import BROKEN, parse_info_threads
from tests.support.tmux import Tmux
from tests.support.vm import ROOT, osvtrace as cli, require_tools

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]


def test_batch(kernel):
    require_tools("gdb")
    r = cli("gdb", "--no-build", "--smp", "2", "--batch", "--ex", "break gdbcheck_stop", "--ex", "continue",
            "--ex", "osv info threads", "--ex", "osv mutex gdbcheck::held", "gdbcheck", timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for bad in BROKEN:
        assert bad not in out
    assert "Breakpoint 1, gdbcheck_stop ()" in out
    table = out[out.index("id  name"):out.index("mutex gdbcheck::held at")]
    rows = parse_info_threads(table)
    assert {r["name"] for r in rows.values()} >= {"main", "holder", "waiter-1", "sleeper-4"}
    assert "    1. thread 7 (waiter-1)" in out


def test_missing_app_is_the_kernels_message(kernel):
    require_tools("gdb")
    r = cli("gdb", "--no-build", "--batch", "--ex", "continue", "nosuchapp", timeout=60)
    assert "kernel: unknown app 'nosuchapp'" in r.stdout


def test_a_person_at_the_terminal(kernel, tmp_path):
    require_tools("gdb", "tmux")
    env = {"HOME": str(tmp_path), "TERM": "xterm-256color", "PYTHONPATH": str(ROOT),
           "OSVTRACE_TEST_RUN": os.environ["OSVTRACE_TEST_RUN"]}
    t = Tmux(tmp_path, "gdb", f"{sys.executable} -m osvtrace.cli.main gdb --no-build --smp 2 "
             f"--console {tmp_path}/console.txt sleep 600000", env, width=150, height=40)
    try:
        t.wait("(gdb)", 30)
        t.type("continue")
        t.keys("Enter")
        t.wait("Continuing.")
        console = tmp_path / "console.txt"
        deadline = time.monotonic() + 30
        while "boot: app main at" not in (console.read_text() if console.exists() else ""):
            assert time.monotonic() < deadline, "the app never started"
            time.sleep(0.05)
        # the app sleeps: Ctrl-C reaches gdb, which stops the VM; osvtrace and QEMU stay. main
        # is asleep soon after its first console line, but a loaded host may not have run its
        # vCPU that far yet: then continue and stop again (was: one try after a 0.3 s sleep)
        for attempt in range(20):
            time.sleep(0.3)
            t.keys("C-c")
            t.wait("SIGINT", 20)
            t.wait("(gdb)")
            t.keys("C-l")  # a clear screen: what follows is this attempt's only
            t.type("osv info threads")
            t.keys("Enter")
            t.type(f"print {1000 + attempt}")  # its answer marks the end of the table
            t.keys("Enter")
            s = t.wait(f"= {1000 + attempt}", 20)
            if "sleep until" in s:
                break
            t.type("continue")
            t.keys("Enter")
            t.wait("Continuing.")
        assert "main" in s and "sleeping" in s and "sleep until" in s, s
        t.type("osv thread 2")
        t.keys("Enter")
        t.wait("its saved context is loaded")
        t.type("bt")
        t.keys("Enter")
        t.wait("threads::sleep_ns")
        t.type("quit")
        t.keys("Enter")
        t.wait("Quit anyway? (y or n)")
        t.type("y")
        t.keys("Enter")
        t.wait_gone(20)
    finally:
        t.close()
    assert "boot: app main at" in (tmp_path / "console.txt").read_text()
