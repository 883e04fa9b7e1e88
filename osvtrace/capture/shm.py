"""Shared guest RAM: `osvtrace record --via shm` and `osvtrace recover`.

QEMU keeps the guest's RAM in a file (``-object memory-backend-file,share=on``
under /dev/shm). File offset == guest-physical address for RAM below 4 GiB,
and the kernel maps virtual == physical, so every address in the control
block is a file offset. The file outlives QEMU, whether the guest exited,
panicked, hung or QEMU was killed: the rings are read from it afterwards with
the same reader gdb snapshots use (osvtrace.capture.rings). No guest driver is involved.

The control block is found by its symbol in the kernel ELF (pyelftools), or,
without an ELF, by its magic on a 64-byte boundary.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from osvtrace.capture import rings
from osvtrace.catalog import layout
from osvtrace.errors import OsvtraceError
from osvtrace.vm.qemu import Outcome, Vm, VmConfig

SHM_DIR = Path("/dev/shm")
CONTROL_SYMBOL = "osvtrace_control"
DEFAULT_RUN_LIMIT = 600.0


class RamFileError(OsvtraceError):
    """The RAM file cannot be read as this kernel's memory."""


def ram_args(path: Path, mem_mb: int) -> list[str]:
    """QEMU arguments that put guest RAM in a shared file."""
    return ["-object", f"memory-backend-file,id=osvtrace-ram,size={mem_mb}M,mem-path={path},share=on",
            "-machine", "memory-backend=osvtrace-ram"]


def elf_symbol(elf: str | os.PathLike, name: str = CONTROL_SYMBOL) -> int:
    """Address of a symbol in the kernel ELF (virtual == physical in this kernel)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(elf, "rb") as f:
            symtab = ELFFile(f).get_section_by_name(".symtab")
            syms = symtab.get_symbol_by_name(name) if symtab else None
    except FileNotFoundError:
        raise RamFileError(f"{elf}: no such kernel ELF") from None
    except ELFError as e:
        raise RamFileError(f"{elf}: not an ELF file ({e})") from None
    if not syms:
        raise RamFileError(f"{elf}: no symbol {name} (not this project's kernel, or stripped)")
    return int(syms[0]["st_value"])


def elf_build_id(elf: str | os.PathLike) -> str:
    """The ELF's GNU build-id in hex ('' if none), to check it is the kernel that ran."""
    from elftools.elf.elffile import ELFFile

    try:
        with open(elf, "rb") as f:
            for sec in ELFFile(f).iter_sections():
                if sec.header["sh_type"] != "SHT_NOTE":
                    continue
                for note in sec.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return str(note["n_desc"])
    except Exception:
        return ""
    return ""


def find_control(mm: mmap.mmap | bytes, limit: int = 64 << 20) -> int:
    """The control block's address found by its magic (64-byte aligned, version and slot size
    checked), searching the first `limit` bytes, where the kernel image lives."""
    n = min(len(mm), limit) // 64 * 64
    words = np.frombuffer(mm, "<u8", n // 8)[::8]  # the first word of every 64-byte line
    hits = np.nonzero(words == layout.CONTROL_MAGIC)[0].tolist()
    del words  # NOTE: a live view would keep the caller from closing the mapping
    for i in hits:
        addr = int(i) * 64
        f = layout.read_struct(mm[addr:addr + 64], {k: v for k, v in layout.CONTROL_FIELDS.items()
                                                     if v[0] < 64})
        if f["version"] == rings.CONTROL_VERSION and f["slot_size"] == layout.SLOT_SIZE:
            return addr
    raise RamFileError("no published control block in the RAM file (the kernel did not get far enough "
                       "to set up tracing, or this is not a RAM file of this kernel)")


@dataclass
class Recovered:
    path: Path
    snapshot: rings.Snapshot
    control_addr: int
    warnings: list[str] = field(default_factory=list)


def snapshot_file(ram: str | os.PathLike, elf: str | os.PathLike | None) -> tuple[rings.Snapshot, int, list[str]]:
    """Read the rings, threads and metadata out of a RAM file."""
    ram = Path(ram)
    warnings: list[str] = []
    try:
        f = open(ram, "rb")
    except FileNotFoundError:
        raise RamFileError(f"{ram}: no such RAM file") from None
    except IsADirectoryError:
        raise RamFileError(f"{ram}: is a directory, not a RAM file") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if f.read(8) == b"OSVTRACE":
            raise RamFileError(f"{ram}: is an .osvt trace, not a RAM file")
        if size < 1 << 20:
            raise RamFileError(f"{ram}: {size} bytes is too small for guest RAM")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            addr = elf_symbol(elf) if elf is not None else find_control(mm)

            def read(a: int, n: int) -> bytes:
                if a < 0 or a + n > size:
                    raise RamFileError(f"address {a:#x}+{n} lies outside the {size >> 20} MiB RAM file")
                return mm[a:a + n]

            snap = rings.snapshot(read, addr)
        finally:
            mm.close()
    if elf is not None:
        want = elf_build_id(elf)
        if want and snap.build_id and want != snap.build_id:
            warnings.append(f"the RAM file's kernel (build {snap.build_id[:12]}) is not {elf} (build {want[:12]}): "
                            "symbols may not match")
    return snap, addr, warnings + snap.warnings


def recover(ram: str | os.PathLike, elf: str | os.PathLike | None, output: str | os.PathLike,
            capture: str = "recover", status: str = "recovered from a RAM file") -> Recovered:
    """Rebuild a trace from the RAM file of a guest that ended, crashed or hung."""
    snap, addr, warnings = snapshot_file(ram, elf)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    rings.write_osvt(snap, out, capture=capture, kernel=str(elf or ""), status=status)
    return Recovered(out, snap, addr, warnings)


@dataclass
class ShmCapture:
    path: Path
    stop: str  # app-exit | panic | duration | interrupt | timeout | qemu-died
    outcome: Outcome
    recovered: Recovered
    ram: Path | None  # kept RAM file (--keep-ram), else None
    seconds: float
    console: str


def record(cfg: VmConfig, output: str | os.PathLike, *, duration: float | None = None, keep_ram: bool = False,
           console: BinaryIO | None = None, stderr: BinaryIO | None = None) -> ShmCapture:
    """Boot with RAM in /dev/shm, let the app run to its end (or `duration`, or Ctrl-C),
    end QEMU, then read the rings from the RAM file."""
    t0 = time.monotonic()
    if not SHM_DIR.is_dir():
        raise RamFileError(f"{SHM_DIR} does not exist: --via shm needs a tmpfs there")
    ram = SHM_DIR / f"osvtrace-{os.getpid()}-{uuid.uuid4().hex[:8]}.ram"
    cfg = dataclasses.replace(cfg, timeout=None, extra_args=list(cfg.extra_args) + ram_args(ram, cfg.mem_mb))
    limit = duration if duration is not None else (cfg.timeout or DEFAULT_RUN_LIMIT)
    stop = "app-exit"
    try:
        with Vm(cfg, console=console, stderr=stderr) as vm:
            try:
                outcome = vm.wait(limit)
                if outcome.kind == "timeout":
                    stop = "duration" if duration is not None else "timeout"
                    outcome = Outcome(outcome.qemu_rc, "stopped")
                elif outcome.kind == "panic":
                    stop = "panic"
                elif outcome.kind != "app":
                    stop = "qemu-died"
            except KeyboardInterrupt:
                vm.stop()
                stop, outcome = "interrupt", Outcome(None, "stopped")
            con = vm.console_text()
        if not ram.exists():
            raise RamFileError(f"{outcome.describe()}; QEMU left no RAM file at {ram}: no trace saved")
        if vm.refused:
            raise RamFileError("the kernel refused to start the app (its message is above); no trace saved")
        status = {"app-exit": f"app exited with status {outcome.app_status}", "panic": "kernel panic",
                  "duration": "stopped after the duration", "interrupt": "stopped by Ctrl-C",
                  "timeout": "stopped at the timeout"}.get(stop, outcome.describe())
        try:
            rec = recover(ram, cfg.kernel, output, capture="shm", status=status)
        except (RamFileError, rings.RingReadError) as e:
            if stop == "app-exit":
                raise
            # QEMU died (or was stopped) before the kernel published its rings: say that first.
            raise RamFileError(f"{outcome.describe()} before the kernel set up tracing; no trace saved ({e})") from None
    finally:
        if not keep_ram and ram.exists():
            ram.unlink()
    return ShmCapture(Path(output), stop, outcome, rec, ram if keep_ram else None, time.monotonic() - t0, con)
