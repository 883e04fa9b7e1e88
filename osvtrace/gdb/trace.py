"""`osv trace ...`: the trace rings (kernel/core/trace.cc, include/trace/*.hh).

The rings are read by osvtrace.rings, the same reader the shared-RAM capture
uses; bulk slot arrays move through QEMU's pmemsave, never read_memory.
"""

from __future__ import annotations

import os

import gdb  # type: ignore[import-not-found]

from osvtrace import layout, rings
from osvtrace.gdb import common


class TracePrefix(gdb.Command):
    """The tracepoint rings: `osv trace save FILE`, `osv trace status`, `osv trace enable GLOBS` ..."""

    def __init__(self) -> None:
        super().__init__("osv trace", gdb.COMMAND_USER, gdb.COMPLETE_NONE, True)


def control() -> rings.Control:
    return rings.read_control(common.read, common.control_address())


def enabled_names(ctl: rings.Control | None = None) -> list[str]:
    """Names of the tracepoints whose enable flag is set, in id order."""
    ctl = ctl or control()
    flags = rings.read_enabled(common.read, ctl)
    cat = common.catalog()
    return [tp.name for tp in cat.active() if tp.id < len(flags) and flags[tp.id]]


def _kernel_path() -> str:
    obj = gdb.current_progspace().filename
    return os.path.abspath(obj) if obj else ""


def elf_build_id() -> str:
    """The GNU build id of the kernel ELF gdb has loaded ('' if unknown)."""
    path = gdb.current_progspace().filename
    for obj in gdb.objfiles():
        if obj.filename == path:
            return obj.build_id or ""
    return ""


def save(path: str, status: str = "") -> rings.Snapshot:
    """Snapshot every ring with the metadata into an .osvt file."""
    snap = rings.snapshot(common.read, common.control_address())
    elf = elf_build_id()
    if elf and snap.build_id and elf != snap.build_id:
        # The layouts are read from the control block, so the trace is still right;
        # but thread and symbol lookups through this ELF may not be.
        snap.warnings.append(f"the running kernel (build {snap.build_id[:12]}) is not the ELF gdb loaded "
                             f"(build {elf[:12]}): symbols may not match")
    rings.write_osvt(snap, path, capture="gdb", catalog=common.catalog(), kernel=_kernel_path(), status=status)
    return snap


def _where() -> str:
    """The trailer's status: where the kernel was stopped for the snapshot."""
    try:
        fn = gdb.selected_frame().name()
    except gdb.error:
        fn = None
    return f"snapshot via gdb, stopped in {fn}" if fn else "snapshot via gdb"


class TraceSave(common.OsvCommand):
    """Save every CPU's trace ring and the metadata into an .osvt trace file.

    Usage: osv trace save FILE
    The slot arrays move through QEMU's `monitor pmemsave` (hundreds of MB/s); the file then
    opens with `osvtrace report summary FILE`.
    """

    def __init__(self) -> None:
        super().__init__("osv trace save", gdb.COMMAND_DATA, gdb.COMPLETE_FILENAME)

    def run(self, arg: str, from_tty: bool) -> None:
        argv = gdb.string_to_argv(arg)
        if len(argv) != 1:
            raise common.OsvError("usage: osv trace save FILE")
        path = os.path.abspath(os.path.expanduser(argv[0]))
        if os.path.isdir(path):
            raise common.OsvError(f"{path} is a directory")
        if not os.path.isdir(os.path.dirname(path)):
            raise common.OsvError(f"cannot write {path}: no directory {os.path.dirname(path)}")
        snap = save(path, status=_where())
        for w in snap.warnings:
            gdb.write(f"osv: warning: {w}\n")
        lost = f", {snap.lost:,} lost" if snap.lost else ""
        gdb.write(f"osv: saved {snap.slots:,} slots from {len(snap.chunks)} CPU(s){lost}, "
                         f"{len(snap.threads)} threads to {path}\n")


class TraceStatus(common.OsvCommand):
    """Show the tracer's state: clock, each CPU's ring (mode, size, fill, lost), enabled tracepoints.

    Example:
      (gdb) osv trace status
    """

    def __init__(self) -> None:
        super().__init__("osv trace status", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        ctl = control()
        w = gdb.write
        w(f"control block at {ctl.addr:#x}: {ctl.ncpus} CPU(s), TSC {ctl.tsc_hz:,} Hz\n")
        rows = []
        for cpu, addr in enumerate(ctl.rings):
            if not addr:
                continue
            r = rings.read_ring(common.read, addr, cpu)
            mode = "stream" if r.mode == layout.RING_MODE_STREAM else "overwrite"
            rows.append((cpu, mode, r.nslots, r.committed, min(r.committed, r.nslots), r.lost))
        w(common.table(rows, ("cpu", "mode", "slots", "written", "held", "lost")))
        names = enabled_names(ctl)
        w(f"enabled ({len(names)}): {', '.join(names) if names else '-'}\n")


class _TraceFlip(common.OsvCommand):
    value = 1

    def run(self, arg: str, from_tty: bool) -> None:
        pats = [p for p in arg.replace(",", " ").split() if p]
        if not pats:
            raise common.OsvError(f"usage: {self._name} GLOB[,GLOB...]")
        cat = common.catalog()
        for p in pats:
            if not cat.match([p]):
                raise common.OsvError(f"'{p}' matches no tracepoint (globs are anchored: try '{p}*')")
        ctl = control()
        tps = [tp for tp in cat.match(pats) if tp.id <= ctl.tp_max]
        for tp in tps:
            common.write(ctl.enabled_addr + tp.id, bytes([self.value]))
        what = "enabled" if self.value else "disabled"
        gdb.write(f"{what}: {', '.join(tp.name for tp in tps)}\n")


class TraceEnable(_TraceFlip):
    """Enable tracepoints by anchored glob at run time (the kernel reads the flags on every call).

    Usage: osv trace enable GLOB[,GLOB...]     e.g. osv trace enable mutex_*,sched_switch
    """

    _name = "osv trace enable"

    def __init__(self) -> None:
        super().__init__(self._name, gdb.COMMAND_DATA)


class TraceDisable(_TraceFlip):
    """Disable tracepoints by anchored glob at run time.

    Usage: osv trace disable GLOB[,GLOB...]    e.g. osv trace disable '*'
    """

    _name = "osv trace disable"
    value = 0

    def __init__(self) -> None:
        super().__init__(self._name, gdb.COMMAND_DATA)


def register() -> None:
    TracePrefix()
    TraceSave()
    TraceStatus()
    TraceEnable()
    TraceDisable()
