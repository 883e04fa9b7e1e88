"""`osv trace ...`: the trace rings (kernel/core/trace.cc, include/trace/*.hh).

The rings are read by osvtrace.capture.rings, the same reader the shared-RAM capture
uses; bulk slot arrays move through QEMU's pmemsave, never read_memory. Records
are decoded by osvtrace's decoder (osvtrace.format.trace over a temporary .osvt), with
the package's tracepoint catalog: there is no second table of tracepoints here.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

import gdb  # type: ignore[import-not-found]
from osvtrace.capture import rings
from osvtrace.catalog import layout
from osvtrace.catalog.schema import default_catalog
from osvtrace.format import trace as trace_file
from osvtrace.gdb import commands, fmt, guestmem, stacks, stacktext
from osvtrace.model.filters import format_ns

DEFAULT_RECORDS = 20


def decoded(limit: int | dict[int, int] | None = None) -> tuple[Any, rings.Snapshot]:
    """The rings (the newest `limit` slots of each, or all) decoded by osvtrace: an
    osvtrace.format.trace.Trace, and the snapshot it came from."""
    snap = rings.snapshot(guestmem.read, guestmem.control_address(), limit=limit)
    fd, path = tempfile.mkstemp(prefix="osv-trace-", suffix=".osvt")
    os.close(fd)
    try:
        rings.write_osvt(snap, path, capture="gdb", catalog=default_catalog(), status="gdb: osv trace")
        return trace_file.open(path, verify=False, workers=1), snap
    finally:
        os.unlink(path)  # the mapping stays valid after the unlink


def parse_list_args(arg: str) -> tuple[int, list[str], int | None, bool]:
    """`[N] [--tp GLOB[,GLOB]] [--cpu N] [-s|--stacks]` -> (N, globs, cpu, stacks)."""
    argv = gdb.string_to_argv(arg)
    n, globs, cpu, show_stacks = DEFAULT_RECORDS, [], None, False
    usage = "usage: osv trace [N] [--tp GLOB[,GLOB...]] [--cpu N] [-s|--stacks]"
    i = 0
    while i < len(argv):
        a = argv[i]
        key, eq, val = a.partition("=")
        if a in ("-s", "--stacks"):
            show_stacks = True
        elif key in ("--tp", "--cpu"):
            if not eq:
                if i + 1 >= len(argv):
                    raise commands.OsvError(usage)
                val = argv[i + 1]
                i += 1
            if key == "--tp":
                globs += [g for g in val.split(",") if g]
            else:
                if not val.isdigit():
                    raise commands.OsvError(f"--cpu needs a CPU number, not {val!r}")
                cpu = int(val)
        elif a.isdigit():
            n = int(a)
        else:
            raise commands.OsvError(f"{usage} (not {a!r})")
        i += 1
    cat = default_catalog()
    for g in globs:
        if not cat.match([g]):
            raise commands.OsvError(f"'{g}' matches no tracepoint (globs are anchored: try '{g}*')")
    return n, globs, cpu, show_stacks


def latest(n: int, globs: list[str], cpu: int | None) -> tuple[Any, np.ndarray, rings.Snapshot]:
    """(trace, indices of its newest n matching records in time order, snapshot).

    Reads only the newest slots of each ring, doubling the window until each CPU has n
    matches or the window holds its whole ring."""
    cat = default_catalog()
    ids = np.array([tp.id for tp in cat.match(globs)], np.uint16) if globs else None
    wide = max((tp.nslots for tp in cat.active()), default=1)
    window = max(64, n * wide)
    while True:
        trace, snap = decoded(limit=window)
        ev = trace.events
        mask = np.ones(len(ev), bool)
        if ids is not None:
            mask &= np.isin(ev.tp, ids)
        if cpu is not None:
            mask &= ev.cpu == cpu
        idx = np.nonzero(mask)[0]
        short = [c for c in snap.chunks if (cpu is None or c.cpu == cpu) and c.nslots >= window
                 and int(np.count_nonzero(ev.cpu[idx] == c.cpu)) < n]
        if not short or window >= max(r.nslots for r in snap.rings):
            return trace, idx[-n:] if n else idx[:0], snap
        window *= 4


def lines(trace: Any, idx: np.ndarray, show_stacks: bool = False) -> list[str]:
    """Formatted records (the layout of `osvtrace report list`); with show_stacks, each
    record's stack trailer under it, named by gdb."""
    ev = trace.events
    width = min(max((len(trace.thread_name(int(t))) for t in ev.tid[idx].tolist()), default=8), 24)
    bts = trace.backtraces(idx) if show_stacks else None
    ends = trace.backtrace_ends(idx) if show_stacks else None
    out = []
    for k, i in enumerate(idx.tolist()):
        tp = trace.catalog.by_id.get(int(ev.tp[i]))
        out.append(f"{trace.thread_name(int(ev.tid[i]))[:width]:<{width}} {int(ev.cpu[i]):>3} "
                   f"{format_ns(int(ev.time[i]))} {tp.name if tp else ev.tp[i]:<18} {trace.format_event(i)}")
        if bts is not None and int(ends[k]) != layout.STACK_NONE:
            end = stacktext.TRAILER_ENDS.get(int(ends[k]), stacktext.BAD_FRAME)
            out += stacktext.stack_lines(_interrupted(trace, tp, i) + stacks.sites(bts[k].tolist()), end,
                                         layout.STACK_MAX_FRAMES)
    return out


def _interrupted(trace: Any, tp: Any, i: int) -> list[stacktext.Site]:
    """A sample's first frame: the interrupted instruction, its `pc` argument (the schema says
    its stack holds the callers), named as it is, not as a return address."""
    f = next((f for f in tp.fields if f.name == "pc"), None) if tp is not None else None
    if f is None:
        return []
    pc = int(trace.field_values(f, trace.events.row[i:i + 1])[0])
    return [stacks.site(pc, call=False)] if pc else []


def with_stacks(trace: Any, idx: np.ndarray) -> int:
    """How many of records idx carry a stack trailer."""
    return int(np.count_nonzero(trace.backtrace_ends(idx) != layout.STACK_NONE)) if len(idx) else 0


class TracePrefix(commands.OsvCommand):
    """Show the newest trace records, decoded by osvtrace (or use a subcommand below).

    Usage: osv trace [N] [--tp GLOB[,GLOB...]] [--cpu N] [-s|--stacks]
    N records (default 20) from all CPUs in time order; --tp keeps the tracepoints the
    anchored globs match, --cpu one CPU. Columns: thread, CPU, seconds since boot,
    tracepoint, arguments (as `osvtrace report list` prints them).
    --stacks: under each record that carries a stack (tracepoints enabled with
    backtraces: the tracebt= boot option, `osvtrace run --tracebt`), its frames as `bt`
    shows them: return address, function+offset, file:line of the call, named by gdb;
    a stack cut by the depth bound (16 frames), looping, or stopped at a bad frame
    pointer says so on its last line.
    Example:
      (gdb) osv trace 50 --tp sched_* --cpu 1
      (gdb) osv trace 5 --tp mutex_lock_wait --stacks
    """

    def __init__(self) -> None:
        super().__init__("osv trace", gdb.COMMAND_DATA, gdb.COMPLETE_COMMAND, True)

    def run(self, arg: str, from_tty: bool) -> None:
        n, globs, cpu, show_stacks = parse_list_args(arg)
        trace, idx, snap = latest(n, globs, cpu)
        if cpu is not None and cpu >= snap.control.ncpus:
            raise commands.OsvError(f"no CPU {cpu} (the kernel has {snap.control.ncpus})")
        if show_stacks:
            check_build(snap)  # the stacks are named through the ELF gdb loaded
        for w in snap.warnings:
            gdb.write(f"osv: warning: {w}\n")
        if not len(idx):
            what = " matching" if globs or cpu is not None else ""
            gdb.write(f"no{what} records in the rings (enabled: {', '.join(enabled_names(snap.control)) or 'none'})\n")
            return
        gdb.write("\n".join(lines(trace, idx, show_stacks)) + "\n")
        held = 0 if show_stacks else with_stacks(trace, idx)
        if held:
            gdb.write(f"({held} of these records carry a stack: osv trace --stacks shows them)\n")


def control() -> rings.Control:
    return rings.read_control(guestmem.read, guestmem.control_address())


def enabled_names(ctl: rings.Control | None = None) -> list[str]:
    """Names of the tracepoints whose enable flag is set, in id order."""
    ctl = ctl or control()
    flags = rings.read_enabled(guestmem.read, ctl)
    cat = default_catalog()
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


def check_build(snap: rings.Snapshot) -> None:
    """A warning in snap when the running kernel is not the ELF gdb loaded."""
    elf = elf_build_id()
    if elf and snap.build_id and elf != snap.build_id:
        # The layouts are read from the control block, so the trace is still right;
        # but thread and symbol lookups through this ELF may not be.
        snap.warnings.append(f"the running kernel (build {snap.build_id[:12]}) is not the ELF gdb loaded "
                             f"(build {elf[:12]}): symbols may not match")


def save(path: str, status: str = "") -> rings.Snapshot:
    """Snapshot every ring with the metadata into an .osvt file."""
    snap = rings.snapshot(guestmem.read, guestmem.control_address())
    check_build(snap)
    rings.write_osvt(snap, path, capture="gdb", catalog=default_catalog(), kernel=_kernel_path(), status=status)
    return snap


def _where() -> str:
    """The trailer's status: where the kernel was stopped for the snapshot."""
    try:
        fn = gdb.selected_frame().name()
    except gdb.error:
        fn = None
    return f"snapshot via gdb, stopped in {fn}" if fn else "snapshot via gdb"


class TraceSave(commands.OsvCommand):
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
            raise commands.OsvError("usage: osv trace save FILE")
        path = os.path.abspath(os.path.expanduser(argv[0]))
        if os.path.isdir(path):
            raise commands.OsvError(f"{path} is a directory")
        if not os.path.isdir(os.path.dirname(path)):
            raise commands.OsvError(f"cannot write {path}: no directory {os.path.dirname(path)}")
        snap = save(path, status=_where())
        for w in snap.warnings:
            gdb.write(f"osv: warning: {w}\n")
        lost = f", {snap.lost:,} lost" if snap.lost else ""
        gdb.write(f"osv: saved {snap.slots:,} slots from {len(snap.chunks)} CPU(s){lost}, "
                         f"{len(snap.threads)} threads to {path}\n")


class TraceStatus(commands.OsvCommand):
    """Show the tracer's state: each CPU's ring, each tracepoint's flag and records.

    Per CPU: ring mode, size, records written, held, fill, lost, overwritten, and a
    record being written (stopped between reserve and commit). Per tracepoint: enabled,
    and how many of its records the rings hold now.

    Usage: osv trace status
    """

    def __init__(self) -> None:
        super().__init__("osv trace status", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        if arg.strip():
            raise commands.OsvError("osv trace status takes no arguments")
        trace, snap = decoded()
        ctl = snap.control
        w = gdb.write
        w(f"control block at {ctl.addr:#x}: {ctl.ncpus} CPU(s), TSC {ctl.tsc_hz:,} Hz\n")
        rows = []
        for c in snap.chunks:
            r = c.ring
            mode = "stream" if r.mode == layout.RING_MODE_STREAM else "overwrite"
            held = c.nslots
            over = max(0, r.committed - r.nslots) if r.mode != layout.RING_MODE_STREAM else 0
            busy = r.head - r.committed  # reserved, not yet committed: stopped inside the writer
            rows.append((c.cpu, mode, r.nslots, r.committed, held, f"{100.0 * held / r.nslots:.1f}%", r.lost, over,
                         f"{busy} slot(s)" if busy else "-"))
        w(fmt.table(rows, ("cpu", "mode", "slots", "written", "held", "fill", "lost", "overwritten", "writing")))
        for x in snap.warnings:
            w(f"osv: warning: {x}\n")
        counts = np.bincount(trace.events.tp, minlength=ctl.tp_max + 1) if len(trace.events) else \
            np.zeros(ctl.tp_max + 1, np.int64)
        tps = []
        for tp in default_catalog().active():
            on = tp.id < len(snap.enabled) and bool(snap.enabled[tp.id])
            held = int(counts[tp.id]) if tp.id < len(counts) else 0
            tps.append((tp.id, tp.name, "on" if on else "off", held))
        w(fmt.table(tps, ("id", "tracepoint", "enabled", "records held")))
        names = enabled_names(ctl)
        w(f"enabled ({len(names)}): {', '.join(names) if names else '-'}\n")
        w("lost counts are per CPU ring (a full stream ring drops records of any tracepoint); "
          "overwritten: flight-recorder slots reused\n")


class _TraceFlip(commands.OsvCommand):
    value = 1
    _name = ""

    def __init__(self) -> None:
        super().__init__(self._name, gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        pats = [p for p in arg.replace(",", " ").split() if p]
        if not pats:
            raise commands.OsvError(f"usage: {self._name} GLOB[,GLOB...]")
        cat = default_catalog()
        for p in pats:
            if not cat.match([p]):
                raise commands.OsvError(f"'{p}' matches no tracepoint (globs are anchored: try '{p}*')")
        ctl = control()
        tps = [tp for tp in cat.match(pats) if tp.id <= ctl.tp_max]
        for tp in tps:
            guestmem.write(ctl.enabled_addr + tp.id, bytes([self.value]))
        what = "enabled" if self.value else "disabled"
        gdb.write(f"{what}: {', '.join(tp.name for tp in tps)}\n")


class TraceEnable(_TraceFlip):
    """Enable tracepoints by anchored glob at run time (the kernel reads the flags on every call).

    Usage: osv trace enable GLOB[,GLOB...]     e.g. osv trace enable mutex_*,sched_switch
    """

    _name = "osv trace enable"


class TraceDisable(_TraceFlip):
    """Disable tracepoints by anchored glob at run time.

    Usage: osv trace disable GLOB[,GLOB...]    e.g. osv trace disable '*'
    """

    _name = "osv trace disable"
    value = 0


def register() -> None:
    TracePrefix()
    TraceSave()
    TraceStatus()
    TraceEnable()
    TraceDisable()
