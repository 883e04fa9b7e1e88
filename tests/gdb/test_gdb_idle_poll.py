"""The idle poll (idle_poll=US) and gdb: the lost wake-up behind "stepi hangs inside the poll".

An idle CPU polls with interrupts on. An interrupt taken after the poll loop's last look at the
queues, just before it turns interrupts off again, can queue a thread on that CPU's own run queue
(a timer waking a thread homed there). The idle loop used to look only at `incoming` before it
halted, so the CPU halted with a runnable thread and nothing left to wake it; with every CPU idle
the VM stood still, and the next gdb `stepi` on a halted vCPU never completed (QEMU finishes a
step only when the vCPU runs an instruction). Under random stops the window is hit often: QEMU
holds interrupts back while it single-steps (SSTEP_NOIRQ), so a step that ends in the window
leaves the timer's interrupt pending there for the next `continue` (tests/gdb/test_gdb_robust.py's
threads workload hung in about 1 run of 5-15).

Here the window is hit on purpose: gdb stops the CPU whose thread sleeps, single-steps it to the
`cli` that ends the poll, lets only the other vCPU run until the sleeper's timer is pending, and
continues. The sleeper must wake and the app end.
"""

from __future__ import annotations

import re
import time

import pytest

from osvtrace.vm.gdbmi import mi_quote
from tests.support.gdb import Booted
from tests.support.vm import ROOT, require_tools

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]

CLI = 0xFA  # the opcode that ends the poll (arch::irq_disable)
TIMER_VECTOR = 240  # arch::vec_timer


def _poll_loop_line() -> int:
    """The line of idle_poll()'s loop in kernel/core/sched.cc (a breakpoint there stops in the poll)."""
    src = (ROOT / "kernel" / "core" / "sched.cc").read_text().splitlines()
    start = next(i for i, ln in enumerate(src) if re.match(r"static \w+ idle_poll\(cpu\* c\)", ln))
    return next(i + 1 for i in range(start, len(src)) if src[i].strip().startswith("for ("))


def _value(b: Booted, expr: str) -> str:
    return b.gdb.mi(f'-data-evaluate-expression "{expr}"').results["value"]


def _lapic_irr(b: Booted, cpu: int) -> list[int]:
    """Vectors pending in the CPU's local APIC (QEMU's `info lapic`, through gdb's monitor)."""
    n = len(b.gdb.log)
    b.cli(f"monitor info lapic {cpu}")
    m = re.search(r"^IRR\s+(.*)$", "".join(b.gdb.log[n:]), re.M)
    assert m, "QEMU's `info lapic` printed no IRR line:\n" + "".join(b.gdb.log[n:])
    return [int(v) for v in re.findall(r"\d+", m[1])]


def test_a_timer_interrupt_as_the_idle_poll_ends_still_wakes_its_thread(kernel):
    require_tools("gdb")
    with Booted(kernel, "sleep", "300", smp=2, timeout=60, extra_cmdline=["idle_poll=50"]) as b:
        g = b.gdb
        # A stop inside the poll loop of the CPU whose timer list holds main's sleep (QEMU's
        # gdb threads are the vCPUs, in order).
        g.mi(f"-break-insert -c {mi_quote('cpus[$_thread - 1]->timers.size_ != 0')} "
             f"core/sched.cc:{_poll_loop_line()}")
        g.continue_()
        stop = g.wait_stopped(30)
        assert stop.results.get("reason") == "breakpoint-hit", (stop.results, b.vm.console_text())
        cpu = int(stop.results["thread-id"]) - 1
        g.mi("-break-delete")  # or the continue below would step over it, interrupts masked

        # Single-step to the `cli` that ends the poll: the poll times out (the TSC runs on
        # while gdb steps), interrupts are on, `polling` is still set.
        for _ in range(5000):
            if int(_value(b, "*(unsigned char*)$pc").split()[0]) == CLI:
                break
            g.mi("-exec-step-instruction")
            g.wait_stopped(10)
        else:
            pytest.fail("5000 steps did not leave the poll loop: " + b.cli("x/i $pc"))
        assert "true" in _value(b, f"cpus[{cpu}]->polling"), b.cli("x/i $pc")  # std::atomic<bool>
        assert _value(b, f"cpus[{cpu}]->runqueue.size_") == "0"

        # That CPU stays stopped there while the other one runs, until main's timer is pending.
        b.cli("set scheduler-locking on")
        b.cli(f"thread {2 - cpu}")  # the other vCPU
        for _ in range(10):
            g.continue_()
            time.sleep(0.5)
            g.interrupt(10)
            if TIMER_VECTOR in _lapic_irr(b, cpu):
                break
        else:
            pytest.fail(f"main's timer never became pending on CPU {cpu}: {_lapic_irr(b, cpu)}")
        b.cli("set scheduler-locking off")

        # The interrupt comes before the `cli` and wakes main onto this CPU's run queue. The
        # idle loop must see it there and run main, not halt.
        g.continue_()
        deadline = time.monotonic() + 20
        while b.vm.running and time.monotonic() < deadline:
            time.sleep(0.1)
        if b.vm.running:
            g.interrupt(10)
            pytest.fail(f"main was never woken: CPU {cpu} halted with it on its run queue and the VM "
                        "stands still (a gdb stepi now would never complete)\n" + b.cli("osv runqueue"))
        assert b.vm.wait(5).app_status == 0, b.vm.console_text()
        assert "sleep: asked 300 ms" in b.vm.console_text()
