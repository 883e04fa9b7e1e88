"""Is an OSv VM still doing anything? The OSv captures wait for an event from the guest (a
breakpoint at the app's end, a REST reply); a guest that stalled (every thread blocked, or
halted) sends none, and the wait must end with one clear line instead of running into a
timeout of minutes.

Progress is read from the host without stopping the VM: QEMU's CPU time (/proc/PID/stat, all
its threads), whether one of its threads is runnable (a VM starved by a loaded host is slow,
not stalled: its vCPU threads wait in the run queue, state R) and the console's length. An
idle OSv (its vCPUs in `hlt`) or a VM stopped by its gdb stub uses almost no CPU and prints
nothing; a running app, even niced on a busy host, shows one of the three within seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from osvtrace.vm.qemu import Vm

# seconds without progress before a wait gives up ($OSVTRACE_OSV_STALL_S changes it): longer
# than any quiet stretch of a run that ends by itself; an app that waits for ever (a server
# without clients) is recorded with --duration
STALL_S = float(os.environ.get("OSVTRACE_OSV_STALL_S") or 60.0)
# below this share of one host core QEMU counts as idle: an idle OSv under TCG takes 0.2-3 %
# (3 % with its HTTP server waiting); a busy one takes a whole core, or, starved by a loaded
# host, has a thread in the run queue (seen by the R test instead)
IDLE_CPU_SHARE = 0.10
INTERVAL_S = 2.0  # progress is judged per interval: one second of CPU ticks is too coarse
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def _any_runnable(pid: int) -> bool:
    """One of the process's threads is running or waiting for a host CPU now."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            if Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "R":
                return True
        except OSError:
            continue
    return False


class ProgressWatch:
    """Samples a running VM (call `check` every fraction of a second) and judges it every
    INTERVAL_S: an interval shows progress when the console grew, QEMU used IDLE_CPU_SHARE of
    a CPU or more, or a QEMU thread was runnable in at least half of its samples (a single
    runnable sample proves nothing: an idle OSv's timer ticks are caught now and then).
    `idle_seconds` is the time since the last interval that showed progress."""

    def __init__(self, vm: Vm, stall_s: float = STALL_S):
        assert vm.proc is not None
        self.vm = vm
        self.pid = vm.proc.pid
        self.stall_s = stall_s
        now = time.monotonic()
        self.progress_at, self.progress_cpu = now, self._cpu()
        self._open(now)
        self.sampled = 0.0
        self.idle_seconds = 0.0

    def _open(self, now: float) -> None:
        """Start an interval."""
        self.since, self.cpu0, self.console0 = now, self._cpu(), len(self.vm.console)
        self.samples = self.runnable = 0

    def _cpu(self) -> float:
        try:
            return _cpu_seconds(self.pid)
        except (OSError, IndexError, ValueError):
            return 0.0  # QEMU is gone: the caller sees that from the VM itself

    def check(self) -> bool:
        """Sample (at most 4 times a second: callers loop every few ms); True when the VM has
        shown no progress for `stall_s` seconds."""
        now = time.monotonic()
        if now - self.sampled < 0.25:
            return False
        self.sampled = now
        self.samples += 1
        self.runnable += _any_runnable(self.pid)
        if now - self.since >= INTERVAL_S:
            cpu = self._cpu()
            if (len(self.vm.console) != self.console0 or (cpu - self.cpu0) / (now - self.since) >= IDLE_CPU_SHARE
                    or self.runnable * 2 >= self.samples):
                self.progress_at, self.progress_cpu = now, cpu
            self._open(now)
        self.idle_seconds = now - self.progress_at
        return self.idle_seconds >= self.stall_s

    def describe(self) -> str:
        """What was seen, for the error line."""
        share = (self._cpu() - self.progress_cpu) / self.idle_seconds if self.idle_seconds > 0 else 0.0
        return (f"no progress for {self.idle_seconds:.0f} s (QEMU at {share * 100:.1f} % of a CPU, its threads "
                f"asleep, the console silent)")
