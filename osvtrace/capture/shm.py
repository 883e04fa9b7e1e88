"""The shared-RAM transport (`record --via shm`): boot with guest RAM in a /dev/shm file, let
the app run, then read the rings from that file (osvtrace.capture.recovery).

The file outlives QEMU, whether the guest exited, panicked, hung or QEMU was killed, so
records still in the rings at a crash are kept; `--keep-ram` leaves it for `osvtrace recover`.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path

from osvtrace.capture import rings
from osvtrace.capture.base import Captured, VmCapture, VmRun, ending
from osvtrace.capture.recovery import RamFileError, lost_per_cpu, write_from_ram
from osvtrace.vm.qemu import Vm, VmConfig

SHM_DIR = Path("/dev/shm")
DEFAULT_RUN_LIMIT = 600.0


def ram_args(path: Path, mem_mb: int) -> list[str]:
    """QEMU arguments that put guest RAM in a shared file."""
    return ["-object", f"memory-backend-file,id=osvtrace-ram,size={mem_mb}M,mem-path={path},share=on",
            "-machine", "memory-backend=osvtrace-ram"]


class SharedRam(VmCapture):
    """Boot with RAM in /dev/shm, wait for the app's end (or `duration`, or Ctrl-C), then read
    the rings from the RAM file."""

    name = "shm"

    def __init__(self, output: str | Path, *, duration: float | None = None, keep_ram: bool = False):
        super().__init__(output, duration=duration)
        self.keep_ram = keep_ram
        self.ram = SHM_DIR / f"osvtrace-{os.getpid()}-{uuid.uuid4().hex[:8]}.ram"
        self.limit = DEFAULT_RUN_LIMIT
        self.kernel: Path | None = None

    def prepare(self, cfg: VmConfig) -> VmConfig:
        if not SHM_DIR.is_dir():
            raise RamFileError(f"{SHM_DIR} does not exist: --via shm needs a tmpfs there")
        self.kernel = cfg.kernel
        self.limit = self.duration if self.duration is not None else (cfg.timeout or DEFAULT_RUN_LIMIT)
        # No timeout for Vm itself: attach waits for self.limit and says which limit it was.
        return dataclasses.replace(cfg, timeout=None, extra_args=list(cfg.extra_args) + ram_args(self.ram, cfg.mem_mb))

    def attach(self, vm: Vm) -> str:
        """Nothing to do while the guest runs: the rings are in the file whatever happens."""
        try:
            outcome = vm.wait(self.limit)
        except KeyboardInterrupt:
            return "interrupt"
        if outcome.kind == "timeout":
            return "duration" if self.duration is not None else "timeout"
        if outcome.kind == "panic":
            return "panic"
        return "app-exit" if outcome.kind == "app" else "qemu-died"

    def finish(self, run: VmRun | None) -> Captured:
        assert run is not None
        stop, outcome = run.stop, run.outcome
        if not self.ram.exists():
            raise RamFileError(f"{outcome.describe()}; QEMU left no RAM file at {self.ram}: no trace saved")
        if run.refused:  # refused before the trace runtime existed: nothing to read
            return self.refused(run)
        status = {"app-exit": f"app exited with status {outcome.app_status}", "panic": "kernel panic",
                  "duration": "stopped after the duration", "interrupt": "stopped by Ctrl-C",
                  "timeout": "stopped at the timeout"}.get(stop, outcome.describe())
        try:
            snap, warnings = write_from_ram(self.ram, self.kernel, self.output, capture="shm", status=status)
        except (RamFileError, rings.RingReadError) as e:
            if stop == "app-exit":
                raise
            # QEMU died (or was stopped) before the kernel published its rings: say that first.
            raise RamFileError(f"{outcome.describe()} before the kernel set up tracing; no trace saved ({e})") from None
        kept = self.ram if self.keep_ram else None
        seconds = time.monotonic() - run.started
        res = Captured(self.output, self.name, stop, outcome, len(snap.chunks), None, snap.slots, lost_per_cpu(snap),
                       seconds, warnings=warnings, console=run.console,
                       extras={"ram_file": str(kept) if kept else None})
        res.summary = (f"recorded {snap.slots:,} slots on {len(snap.chunks)} CPU(s) from shared RAM, {snap.lost:,} "
                       f"lost: {self.output} ({seconds:.2f} s)" + (f"; RAM file kept: {kept}" if kept else ""))
        res.failure = (f"{outcome.describe()}; the trace read from its RAM is in {self.output}"
                       if stop == "qemu-died" else ending(stop, outcome, self.output, self.limit))
        return res

    def close(self) -> None:
        if not self.keep_ram and self.ram.exists():
            self.ram.unlink()
