"""Snapshot capture through gdb: `osvtrace record --via gdb`.

Boots QEMU halted with its gdbstub, lets gdb (in MI mode) run the kernel to
the app's end (a breakpoint on the kernel's exit path, before the
isa-debug-exit write) or for a fixed duration, then runs `osv trace save`
inside gdb: the same code path as a person typing it. Afterwards the VM either
finishes (so the app's status becomes ours) or is ended.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from osvtrace.errors import OsvtraceError
from osvtrace.vm.gdbmi import Gdb, GdbError
from osvtrace.vm.qemu import EXIT_TIMEOUT, BootTime, Outcome, Vm, VmConfig, free_port, pick_accel

# The kernel's exit paths (kernel/arch/x64/debug_exit.cc): every way the VM ends
# on purpose goes through one of these before writing to the exit port.
# osvtrace_app_exit (core/main.cc) is hit first when the app returns, before the
# stream drains; a kernel without it (older) still stops in exit_status.
EXIT_SYMBOLS = {"osvtrace_app_exit": "app-exit", "debug_exit::exit_status": "app-exit",
                "debug_exit::exit_panic": "panic"}
OPTIONAL_SYMBOLS = {"osvtrace_app_exit"}
DEFAULT_RUN_LIMIT = 600.0  # seconds, when neither --duration nor --timeout is given
SAVE_TIMEOUT = 300.0


class CaptureError(OsvtraceError):
    """The capture could not be taken (the VM ended early, gdb failed ...)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Capture:
    path: Path
    stop: str  # app-exit | panic | duration
    outcome: Outcome
    saved: str  # what `osv trace save` printed
    boot: BootTime | None
    console: str
    seconds: float  # wall time of the whole record


def _connect(g: Gdb, vm: Vm, port: int, limit: float = 10.0) -> None:
    """target remote, retried while QEMU is still opening its gdbstub port."""
    deadline = time.monotonic() + limit
    while True:
        try:
            g.connect(port)
            return
        except GdbError as e:
            if not vm.running:
                raise CaptureError(f"QEMU ended before gdb could attach: {vm.errors.decode(errors='replace').strip() or e}") from None
            if time.monotonic() > deadline or "refused" not in str(e).lower():
                raise CaptureError(f"gdb cannot attach to QEMU on port {port}: {e}") from None
            time.sleep(0.05)


def record(cfg: VmConfig, output: str | Path, *, duration: float | None = None, console: BinaryIO | None = None,
           stderr: BinaryIO | None = None) -> Capture:
    """Boot `cfg` under gdb, snapshot the rings into `output` at the app's end (or after
    `duration` seconds), end the VM. The VM's outcome is in the result."""
    t0 = time.perf_counter()
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = dataclasses.replace(cfg, gdb_port=port, gdb_wait=True)
    limit = duration if duration is not None else (cfg.timeout or DEFAULT_RUN_LIMIT)
    # Software breakpoints crash a guest under this platform's KVM; hardware ones work everywhere.
    hw = pick_accel(cfg.accel) == "kvm"
    with Vm(dataclasses.replace(cfg, timeout=None), console=console, stderr=stderr) as vm:
        with Gdb(cfg.kernel) as g:
            _connect(g, vm, port)
            bkpt = {}
            for sym, why in EXIT_SYMBOLS.items():
                try:
                    a = g.mi(f"-break-insert {'-h ' if hw else ''}{sym}")
                except GdbError:
                    if sym in OPTIONAL_SYMBOLS:
                        continue
                    raise
                bkpt[str(a.results.get("bkpt", {}).get("number", ""))] = why
            g.continue_()
            try:
                stop = g.wait_stopped(limit)
            except TimeoutError:
                if duration is None:
                    raise CaptureError(f"the app did not finish within {limit:g} s (give --duration to snapshot a "
                                       "running app, or a larger --timeout)", EXIT_TIMEOUT) from None
                stop = g.interrupt()
                why = "duration"
            else:
                reason = stop.results.get("reason", "")
                if reason.startswith("exited") or g.exited:
                    raise CaptureError("the VM ended before the capture point: " + vm.wait(5).describe())
                why = bkpt.get(str(stop.results.get("bkptno", "")), "")
                if not why:
                    raise CaptureError(f"the kernel stopped unexpectedly ({reason or 'no reason'}); no capture taken")
            failed = None
            try:
                saved = g.cli(f"osv trace save {output}", timeout=SAVE_TIMEOUT)
            except GdbError as e:
                failed, saved = str(e), ""
            if why == "duration":
                outcome = Outcome(None, "stopped")
            else:
                # Let the kernel finish its exit: QEMU then exits with the app's status.
                g.mi("-break-delete")
                g.continue_()
                outcome = vm.wait(30)
            if failed:
                if vm.refused:  # refused before the trace runtime existed: the console says why
                    raise CaptureError("the kernel refused to start the app (its message is above); no trace "
                                       "saved", outcome.exit_code)
                raise CaptureError(f"no trace saved: {failed}", 2)
        if vm.running:
            vm.stop()
    return Capture(output, why, outcome, saved.strip(), vm.boot, vm.console_text(), time.perf_counter() - t0)
