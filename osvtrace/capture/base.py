"""The capture interface: one `Capture` per way of getting ring bytes into an .osvt, one result.

A capture that runs a VM (`VmCapture`: virtio stream, shared RAM, gdb snapshot) is driven by
the recorder (osvtrace.capture.recorder) in four steps, and knows nothing of the others:

1. `prepare(cfg)`: the VM config it needs (QEMU arguments, trace mode, gdb stub) and any host
   resources that must exist before QEMU starts (sockets, a RAM file's path);
2. `attach(vm)`: while the VM runs, do what the transport does (receive a stream, wait, drive
   gdb) until a stop reason (`STOPS`);
3. `end_vm(vm, stop)`: let the VM end or end it, and say how it ended (an `Outcome`);
4. `finish(run)`: complete the .osvt and describe it as a `Captured`; `close()` always runs.

Crash recovery reads what a VM left behind and boots nothing: it is a `Capture` with only
`finish`. Nothing here knows where a kernel keeps its rings (our control block, OSv's trace
pages): that is each implementation's business, so another kernel's gdb snapshot or shared RAM
capture is one more implementation of the same interface.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from osvtrace.errors import OsvtraceError
from osvtrace.vm.qemu import EXIT_RESET, BootTime, Outcome, Vm, VmConfig

# Why a capture stopped, whatever the transport (the `stop` of `record --json`).
STOPS = ("app-exit", "panic", "duration", "interrupt", "ctl-stop", "timeout", "qemu-died", "stalled")

# The summary line's "... on N CPU(s) <when>": one wording for every transport that names it.
WHEN = {"app-exit": "at the app's end", "panic": "at a kernel panic", "duration": "after the duration",
        "interrupt": "at Ctrl-C", "ctl-stop": "at a ctl stop", "timeout": "at the timeout",
        "qemu-died": "when QEMU died", "stalled": "when the guest stalled"}

# A recording whose guest stalled before its end keeps what it captured and exits like a
# command that read a damaged file: the result is there, but not what was asked for.
EXIT_STALLED = 3

REFUSED = "the kernel refused to start the app (its message is above); no trace saved"


class CaptureError(OsvtraceError):
    """The capture failed (the VM ended early, the stream broke, gdb failed ...): one line,
    and what was captured up to there stays in the file when the message says so."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class VmRun:
    """What the recorder saw of the VM, handed to `VmCapture.finish`."""

    stop: str
    outcome: Outcome
    console: str
    refused: bool  # the kernel refused its command line: there is no trace
    boot: BootTime | None
    started: float  # time.monotonic() when the recording began (a capture's seconds count from it)


@dataclass
class Captured:
    """The one result of every capture: what the .osvt holds and how the run ended.

    `summary` and `failure` are worded by the transport (they name what it knows: stream
    rates, a kept RAM file, overwritten slots); everything else is the same for all of them,
    so the CLI prints, serialises and exits from this alone."""

    path: Path
    via: str  # virtio | shm | gdb | recover
    stop: str  # one of STOPS; "" for a recovery (no VM ran)
    outcome: Outcome | None  # None: no VM ran (recovery)
    cpus: int  # 0: no trace was saved
    events: int | None  # None where the transport does not count records
    slots: int | None  # None where the transport does not count slots
    lost: dict[int, int]  # records lost per CPU
    seconds: float
    summary: str = ""  # the one line `osvtrace record` prints
    failure: str | None = None  # why the exit status is not 0, in one line
    warnings: list[str] = field(default_factory=list)
    console: str = ""
    refused: bool = False
    extras: dict[str, Any] = field(default_factory=dict)  # the transport's own --json keys
    notes: list[str] = field(default_factory=list)  # what --verbose adds (gdb: boot time, save output)

    @property
    def saved(self) -> bool:
        """A trace file with at least its metadata was written."""
        return self.cpus > 0

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def exit_code(self) -> int:
        """The status `osvtrace record` exits with: the app's own at its end, else a code for the rest."""
        if self.outcome is None:
            return 0
        if self.refused or self.stop in ("app-exit", "panic"):
            return self.outcome.exit_code
        if self.stop == "interrupt":
            return 130
        if self.stop == "timeout":
            return 124
        if self.stop == "stalled":
            return EXIT_STALLED
        if self.stop in ("duration", "ctl-stop"):
            return 0
        # qemu-died: QEMU's own status, unless it claims the app ended (then the stream did not)
        return self.outcome.exit_code if self.outcome.kind not in ("app", "stopped") else EXIT_RESET

    def to_json(self) -> dict[str, Any]:
        """The --json object: the same keys whatever the transport (null where it does not know)."""
        if self.outcome is None:  # recovery: no run, so no stop, time or rates; its keys as ever
            doc: dict[str, Any] = {"output": str(self.path), "slots": self.slots, "cpus": self.cpus,
                                   "lost": self.lost_total}
        else:
            doc = {"output": str(self.path), "via": self.via, "stop": self.stop, "events": self.events,
                   "slots": self.slots, "cpus": self.cpus, "lost": self.lost_total,
                   "lost_per_cpu": {str(c): n for c, n in sorted(self.lost.items())},
                   "seconds": round(self.seconds, 6),
                   "bytes": self.path.stat().st_size if self.path.exists() else None}
        return {**doc, **self.extras}


def lost_text(lost: dict[int, int]) -> str:
    """'0 lost', or the total with each CPU's share."""
    total = sum(lost.values())
    if not total:
        return "0 lost"
    return f"{total:,} lost (" + ", ".join(f"cpu{c} {n:,}" for c, n in sorted(lost.items())) + ")"


def ending(stop: str, outcome: Outcome, path: Path, limit: float | None = None) -> str | None:
    """The failure line for the stops every transport words alike (None: not a failure, or
    one the transport words itself); `limit` is the --timeout that stopped it."""
    if stop == "app-exit":
        return None if outcome.kind == "app" and outcome.app_status == 0 else outcome.describe()
    if stop == "panic":
        return f"kernel panic; the trace up to it is in {path}"
    if stop == "interrupt":
        return "interrupted"
    if stop == "timeout":
        return f"stopped at the timeout ({limit or 0:g} s)"
    return None


class Capture(abc.ABC):
    """A way of getting a kernel's trace rings into an .osvt file."""

    name: ClassVar[str]

    def __init__(self, output: str | Path):
        self.output = Path(output)  # as given: the summary names the file as the user did

    @abc.abstractmethod
    def finish(self, run: VmRun | None) -> Captured:
        """Complete the .osvt and describe it (`run` is None when no VM ran)."""

    def close(self) -> None:
        """Release what the capture holds (sockets, files, gdb); runs after success and failure."""


class VmCapture(Capture):
    """A capture from a VM the recorder boots for it."""

    def __init__(self, output: str | Path, *, duration: float | None = None):
        super().__init__(output)
        self.duration = duration  # stop after this many seconds instead of at the app's end

    def prepare(self, cfg: VmConfig) -> VmConfig:
        """The config to boot: cfg plus what this transport needs of QEMU and the kernel."""
        return cfg

    def refused(self, run: VmRun) -> Captured:
        """The result when the kernel refused its command line: it never set up tracing, so
        there is no trace (the console says why)."""
        return Captured(self.output, self.name, run.stop, run.outcome, 0, None, None, {},
                        time.monotonic() - run.started, console=run.console, refused=True)

    @abc.abstractmethod
    def attach(self, vm: Vm) -> str:
        """Capture while the VM runs; return why it stopped (one of STOPS)."""

    def end_vm(self, vm: Vm, stop: str) -> Outcome:
        """After `attach`: the VM ends by itself at the app's end or a panic, is collected if it
        died, and is ended for every other stop."""
        if stop in ("app-exit", "panic"):
            return vm.wait(30)
        if stop == "qemu-died":
            try:
                return vm.wait(10)
            except OsvtraceError:
                return Outcome(vm.proc.returncode if vm.proc else None, "qemu-error")
        vm.stop()
        return Outcome(vm.proc.returncode if vm.proc else None, "stopped")
