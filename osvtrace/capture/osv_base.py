"""What every capture of real OSv shares (gdb snapshot, shared RAM, REST): the build it boots,
OSv's own trace options, a scratch directory, and the one check that the VM is OSv at all."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from osvtrace.capture.base import CaptureError, VmCapture
from osvtrace.vm import osv_image
from osvtrace.vm.qemu import Outcome, Vm

DEFAULT_RUN_LIMIT = 600.0
BANNER = "OSv v"  # OSv's first console line ("OSv v0.57.0-...")
# seconds after the start: no banner by then, and it is not OSv ($OSVTRACE_OSV_BANNER_S changes it)
BANNER_LIMIT = float(os.environ.get("OSVTRACE_OSV_BANNER_S") or 60.0)
READY = "Cmdline:"  # OSv prints its command line after parsing its options, just before the app
DEFAULT_TRACE = ("sched*", "mutex*", "condvar*", "net_packet*")
# loader.cc's launch_error lines ("<why>. Powering off."); an orderly shutdown prints "Powering off." too
LAUNCH_FAILED = ("Failed to load object", "Failed looking up main")


class OsvCapture(VmCapture):
    """A capture that boots an OSv image (osvtrace.vm.osv_image) with OSv's trace options."""

    kernel = "osv"

    def __init__(self, output: str | Path, *, duration: float | None = None, build: osv_image.OsvBuild,
                 trace: list[str] | None = None, backtrace: bool = False, osv_args: tuple[str, ...] = ()):
        super().__init__(output, duration=duration)
        self.output = self.output.resolve()
        self.build = build
        self.globs = list(trace) if trace else list(DEFAULT_TRACE)
        self.backtrace = backtrace
        self.osv_args = osv_args
        self.tmp = Path(tempfile.mkdtemp(prefix=f"osvtrace-osv-{self.name}-"))
        self.port = 0
        self.limit = DEFAULT_RUN_LIMIT
        self.line = ""  # OSv's command line, as written into the image
        self.launch_failed = False  # OSv could not start the app (its console says why)

    def check_banner(self, vm: Vm, started: float) -> None:
        """Past BANNER_LIMIT seconds from `started` without OSv's banner: the image is not OSv."""
        if time.monotonic() - started > BANNER_LIMIT and BANNER not in vm.console_text():
            raise CaptureError(f"the VM is not OSv: no OSv banner on its console after {BANNER_LIMIT:g} s "
                               f"({self.build.image} is not an OSv image?)")

    def powered_off(self, vm: Vm) -> Outcome:
        """Wait for the power-off OSv is on its way to (ending the VM after 30 s without it).
        OSv powers off with QEMU status 0 and reports no exit status of its own: 0 for an app
        that ran, 1 when OSv could not start it."""
        try:
            rc = vm.proc.wait(30) if vm.proc else None
        except Exception:  # noqa: BLE001 - it did not power off: end it
            vm.stop()
            return Outcome(vm.proc.returncode if vm.proc else None, "stopped")
        vm.stop()  # collect the console readers
        return Outcome(rc, "app", 1 if self.launch_failed else 0) if rc == 0 else Outcome(rc, "unknown")

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
