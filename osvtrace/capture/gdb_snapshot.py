"""The gdb snapshot transport (`record --via gdb`).

Boots QEMU halted with its gdbstub, lets gdb (in MI mode) run the kernel to
the app's end (a breakpoint on the kernel's exit path, before the
isa-debug-exit write) or for a fixed duration, then runs `osv trace save`
inside gdb: the same code path as a person typing it. Afterwards the VM either
finishes (so the app's status becomes ours) or is ended.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from osvtrace.capture.base import WHEN, Captured, CaptureError, VmCapture, VmRun, ending
from osvtrace.kernels import reference
from osvtrace.vm.gdbmi import Gdb, GdbError
from osvtrace.vm.qemu import EXIT_TIMEOUT, Outcome, Vm, VmConfig, boot_line, free_port, pick_accel

DEFAULT_RUN_LIMIT = 600.0  # seconds, when neither --duration nor --timeout is given
SAVE_TIMEOUT = 300.0


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


class GdbSnapshot(VmCapture):
    """Boot halted under gdb, run to the capture point (the app's end, a panic, or `duration`),
    run `osv trace save` there, then let the VM finish or end it."""

    name = "gdb"

    def __init__(self, output: str | Path, *, duration: float | None = None):
        super().__init__(output, duration=duration)
        self.output = self.output.resolve()  # gdb runs in its own working directory
        self.kernel: Path | None = None
        self.port = 0
        self.limit = DEFAULT_RUN_LIMIT
        self.hw = False
        self.gdb: Gdb | None = None
        self.saved = ""  # what `osv trace save` printed
        self.failed: str | None = None  # why it saved nothing

    def prepare(self, cfg: VmConfig) -> VmConfig:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.kernel, self.port = cfg.kernel, free_port()
        self.limit = self.duration if self.duration is not None else (cfg.timeout or DEFAULT_RUN_LIMIT)
        # Software breakpoints crash a guest under this platform's KVM; hardware ones work everywhere.
        self.hw = pick_accel(cfg.accel) == "kvm"
        # No timeout for Vm itself: attach waits for self.limit under gdb.
        return dataclasses.replace(cfg, gdb_port=self.port, gdb_wait=True, timeout=None)

    def attach(self, vm: Vm) -> str:
        """Attach gdb, run to a capture point and save the rings there; the VM stays halted."""
        g = self.gdb = Gdb(self.kernel)
        _connect(g, vm, self.port)
        bkpt = {}
        # Where the kernel's runs end on purpose (osvtrace.kernels.reference): the snapshot is taken there.
        kernel = reference.KERNEL
        for sym, why in kernel.exit_breakpoints.items():
            try:
                a = g.mi(f"-break-insert {'-h ' if self.hw else ''}{sym}")
            except GdbError:
                if sym in kernel.optional_breakpoints:
                    continue
                raise
            bkpt[str(a.results.get("bkpt", {}).get("number", ""))] = why
        g.continue_()
        try:
            stop = g.wait_stopped(self.limit)
        except TimeoutError:
            if self.duration is None:
                raise CaptureError(f"the app did not finish within {self.limit:g} s (give --duration to snapshot a "
                                   "running app, or a larger --timeout)", EXIT_TIMEOUT) from None
            g.interrupt()
            why = "duration"
        else:
            reason = stop.results.get("reason", "")
            if reason.startswith("exited") or g.exited:
                raise CaptureError("the VM ended before the capture point: " + vm.wait(5).describe())
            why = bkpt.get(str(stop.results.get("bkptno", "")), "")
            if not why:
                raise CaptureError(f"the kernel stopped unexpectedly ({reason or 'no reason'}); no capture taken")
        try:
            self.saved = g.cli(f"osv trace save {self.output}", timeout=SAVE_TIMEOUT).strip()
        except GdbError as e:
            self.failed = str(e)
        return why

    def end_vm(self, vm: Vm, stop: str) -> Outcome:
        if stop != "duration" and self.gdb is not None:
            # Let the kernel finish its exit: QEMU then exits with the app's status.
            self.gdb.mi("-break-delete")
            self.gdb.continue_()
        try:
            return super().end_vm(vm, stop)
        finally:
            self.close()

    def finish(self, run: VmRun | None) -> Captured:
        assert run is not None
        seconds = time.monotonic() - run.started
        if self.failed:
            if run.refused:  # refused before the trace runtime existed: the console says why
                return self.refused(run)
            raise CaptureError(f"no trace saved: {self.failed}", 2)
        from osvtrace.format.trace import open as open_trace

        # What the file holds, read back through the decoder: what a report will see.
        with open_trace(self.output) as t:
            events, cpus = len(t), t.ncpus
            lost = {c: lc.dropped + lc.gap_slots for c, lc in t.loss.items()}
            over = sum(lc.overwritten_slots for lc in t.loss.values())
        res = Captured(self.output, self.name, run.stop, run.outcome, cpus, events, None, lost, seconds,
                       console=run.console, extras={"overwritten_slots": over},
                       notes=[boot_line(run.boot), f"gdb: {self.saved}"])
        extra = f", {over:,} older slots overwritten" if over else ""
        res.summary = (f"recorded {events:,} events on {cpus} CPU(s) {WHEN[run.stop]}, {sum(lost.values()):,} "
                       f"lost{extra}: {self.output} ({seconds:.2f} s)")
        res.failure = ending(run.stop, run.outcome, self.output)
        return res

    def close(self) -> None:
        if self.gdb is not None:
            self.gdb.close()
            self.gdb = None
