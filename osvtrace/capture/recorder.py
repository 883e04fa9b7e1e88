"""The recorder: runs one capture from a VM, whatever the transport, and returns its result.

It only orchestrates: it picks the transport by name (`TRANSPORTS`, what `record --via`
offers), lets it add what it needs to the VM's config, boots the VM (osvtrace.vm.qemu), hands
the VM to the transport until a stop reason, lets the VM end (or ends it), and asks the
transport for the finished .osvt and its `Captured` result. Everything a transport knows about
its wire, its files or its debugger stays in its own module. `recover` is the capture that
boots nothing: a trace rebuilt from the RAM file a VM left behind.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, BinaryIO

from osvtrace.capture.base import Captured, VmCapture, VmRun
from osvtrace.capture.gdb_snapshot import GdbSnapshot
from osvtrace.capture.osv_gdb import OsvGdbSnapshot
from osvtrace.capture.osv_rest import OsvRest
from osvtrace.capture.osv_shm import OsvSharedRam
from osvtrace.capture.recovery import Recovery
from osvtrace.capture.shm import SharedRam
from osvtrace.capture.virtio import VirtioStream
from osvtrace.vm.qemu import QEMU, Vm, VmConfig

# `record --via NAME`: the first is the default.
TRANSPORTS: dict[str, type[VmCapture]] = {t.name: t for t in (VirtioStream, SharedRam, GdbSnapshot)}
# `record --kernel NAME --via NAME`: each kernel's transports (the first is its default).
KERNEL_TRANSPORTS: dict[str, dict[str, type[VmCapture]]] = {
    "osvtrace": TRANSPORTS,
    "osv": {t.name: t for t in (OsvGdbSnapshot, OsvSharedRam, OsvRest)},
}
# Every `--via` name, of any kernel (the first kernel's first).
VIA_NAMES: list[str] = list(dict.fromkeys(name for vias in KERNEL_TRANSPORTS.values() for name in vias))


def run(capture: VmCapture, cfg: VmConfig, *, console: BinaryIO | None = None, stderr: BinaryIO | None = None,
        qemu: str = QEMU) -> Captured:
    """Boot `cfg` for `capture` and capture its trace; the capture's resources are released
    whatever happens (a failure raises, and what was captured up to it stays in the file)."""
    t0 = time.monotonic()
    try:
        with Vm(capture.prepare(cfg), console=console, stderr=stderr, qemu=qemu) as vm:
            stop = capture.attach(vm)
            outcome = capture.end_vm(vm, stop)
            vm_run = VmRun(stop, outcome, vm.console_text(), vm.refused, vm.boot, t0)
        return capture.finish(vm_run)
    finally:
        capture.close()


def record(cfg: VmConfig, output: str | Path, via: str = "virtio", *, kernel: str = "osvtrace",
           console: BinaryIO | None = None, stderr: BinaryIO | None = None, qemu: str = QEMU,
           **options: Any) -> Captured:
    """Boot `cfg` and record its trace into `output` through `kernel`'s transport named `via`;
    `options` are that transport's own (duration, ctl_socket, progress, on_ready for virtio;
    duration, keep_ram for shm; duration for gdb; for osv's gdb: duration, build, trace,
    backtrace)."""
    return run(KERNEL_TRANSPORTS[kernel][via](output, **options), cfg, console=console, stderr=stderr, qemu=qemu)


def recover(ram: str | os.PathLike, elf: str | os.PathLike | None, output: str | os.PathLike) -> Captured:
    """Rebuild a trace from the RAM file of a guest that ended, crashed or hung (no VM runs)."""
    capture = Recovery(ram, elf, output)
    try:
        return capture.finish(None)
    finally:
        capture.close()
