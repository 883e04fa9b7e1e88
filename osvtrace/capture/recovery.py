"""Crash recovery (`osvtrace recover`): a trace rebuilt from the RAM file of a guest that
ended, crashed, hung or was killed; no VM runs.

QEMU keeps the guest's RAM in a file with ``-object memory-backend-file,share=on`` (what
`record --via shm` boots with, osvtrace.capture.shm). File offset == guest-physical address
for RAM below 4 GiB, and this kernel maps virtual == physical, so every address in the
control block is a file offset. The rings are read from it with the same reader gdb
snapshots use (osvtrace.capture.rings). No guest driver is involved.

The control block is found by its symbol in the kernel ELF (pyelftools), or, without an
ELF, by its magic on a 64-byte boundary.
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

import numpy as np

from osvtrace.capture import rings
from osvtrace.capture.base import Capture, Captured, CaptureError, VmRun
from osvtrace.catalog import layout
from osvtrace.kernels import reference

CONTROL_SYMBOL = reference.KERNEL.trace_buffers  # the control block leads to every ring


class RamFileError(CaptureError):
    """The RAM file cannot be read as this kernel's memory."""


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


def write_from_ram(ram: str | os.PathLike, elf: str | os.PathLike | None, output: str | os.PathLike, *,
                   capture: str, status: str) -> tuple[rings.Snapshot, list[str]]:
    """Read the rings out of a RAM file and write them as the .osvt `output`; returns the
    snapshot and the warnings (what recovery and the shared-RAM transport share)."""
    snap, _addr, warnings = snapshot_file(ram, elf)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    rings.write_osvt(snap, out, capture=capture, kernel=str(elf or ""), status=status)
    return snap, warnings


def lost_per_cpu(snap: rings.Snapshot) -> dict[int, int]:
    """Records the writers counted as lost, per CPU."""
    return {c.cpu: c.lost_total for c in sorted(snap.chunks, key=lambda c: c.cpu)}


class Recovery(Capture):
    """The capture without a VM: `finish(None)` rebuilds the trace from `ram`."""

    name = "recover"

    def __init__(self, ram: str | os.PathLike, elf: str | os.PathLike | None, output: str | os.PathLike):
        super().__init__(output)
        self.ram, self.elf = Path(ram), elf

    def finish(self, run: VmRun | None) -> Captured:
        t0 = time.monotonic()
        snap, warnings = write_from_ram(self.ram, self.elf, self.output, capture="recover",
                                        status="recovered from a RAM file")
        res = Captured(self.output, self.name, "", None, len(snap.chunks), None, snap.slots, lost_per_cpu(snap),
                       time.monotonic() - t0, warnings=warnings, extras={"threads": len(snap.threads)})
        res.summary = (f"recovered {snap.slots:,} slots on {len(snap.chunks)} CPU(s), {snap.lost:,} lost, "
                       f"{len(snap.threads)} thread names: {self.output}")
        return res
