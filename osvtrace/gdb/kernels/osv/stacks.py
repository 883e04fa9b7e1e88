"""A thread's stack: its saved rsp/rbp/rip (thread_state, written by switch_to) loaded
into a vCPU, or its own vCPU when it runs, and gdb's unwinder. Frames that lock a mutex,
wait on a condvar or join a thread keep the object they name."""

from __future__ import annotations

import os
from typing import Any, Callable

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, context
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.kernels.osv.frames import Frame, location
from osvtrace.gdb.kernels.osv.syms import load_app_symbols
from osvtrace.gdb.kernels.osv.threads import Snapshot, Thread


MAX_FRAMES = 64


def _frame_arg(f: Any, name: str) -> int:
    try:
        return int(f.read_var(name)) & ((1 << 64) - 1)
    except (gdb.error, ValueError, RuntimeError):
        return 0


def _walk_frames(limit: int = MAX_FRAMES) -> tuple[list[Frame], str]:
    out: list[Frame] = []
    try:
        f = gdb.newest_frame()
    except gdb.error as e:
        return out, f"no frame: {e}"
    while f is not None and len(out) < limit:
        try:
            pc = f.pc()
            name = f.name() or ""
            sal = f.find_sal()
            if sal.symtab is not None:
                where = f"{sal.symtab.filename.removeprefix('../../')}:{sal.line}"
            else:  # no line info: `info symbol` names the function and the object file
                info = gdb.execute(f"info symbol {pc:#x}", to_string=True).strip()
                where = ""
                if not info.startswith("No symbol"):
                    sym, _sep, section = info.partition(" in section ")
                    name = name or sym
                    where = os.path.basename(section.split(" of ", 1)[1]) if " of " in section else ""
            fr = Frame(pc, name or "??", where)
            if name.startswith("lockfree::mutex::lock") or name.startswith("lockfree::mutex::send_lock"):
                fr.mutex = _frame_arg(f, "this")
            elif name in ("pthread_mutex_lock", "pthread_mutex_timedlock"):
                fr.pmutex = _frame_arg(f, "m")
            elif name.startswith("condvar::wait") or name.startswith("condvar_wait"):
                fr.condvar = _frame_arg(f, "this") or _frame_arg(f, "condvar")
            elif name == "pthread_cond_wait" or name == "pthread_cond_timedwait":
                fr.condvar = fr.condvar or _frame_arg(f, "cond")
            elif name.startswith("sched::thread::join"):
                fr.join = _frame_arg(f, "this")
            out.append(fr)
            f = f.older()
        except gdb.error as e:
            return out, f"unwinding stopped: {commands.one_line(str(e))}"
    return out, ("more frames not shown" if f is not None else "")


def stack_of(t: Thread, saved: dict[str, int] | None = None) -> tuple[list[Frame], str]:
    """Thread t's frames, innermost first, with a note if the unwinding stopped early.

    A switched-out thread's rsp/rbp/rip are loaded into the selected vCPU; with `saved`
    the vCPU's own values are kept there (the first time) and left for the caller to put
    back, so a walk over many threads writes the registers once per thread, not twice."""
    cur = gdb.selected_thread()
    if t.vcpu is not None:
        try:
            context._select_vcpu(t.vcpu)
            return _walk_frames()
        finally:
            if cur is not None and cur.is_valid():
                cur.switch()
    if not t.rsp or not t.rip:
        return [], "no saved context (being created, or not started)"
    if t.state in ("gone", "terminated"):
        return [], f"{t.state}: its stack may be freed"
    own = {} if saved is None else saved
    context._write_registers({"rsp": t.rsp, "rbp": t.rbp, "rip": t.rip}, own)
    try:
        return _walk_frames()
    finally:
        if saved is None:
            context._write_registers(own)


def with_stacks(snap: Snapshot, which: Callable[[Thread], bool] = lambda t: True) -> None:
    """Unwind the chosen threads of snap (frames and notes set on each); the selected
    vCPU's registers are put back at the end."""
    if context.STATE.saved:
        context.restore(quiet=True)
    load_app_symbols(quiet=True)
    saved: dict[str, int] = {}
    try:
        # Threads on a vCPU first: their vCPU may be the one the others' contexts are loaded into.
        for t in sorted(snap.threads, key=lambda t: t.vcpu is None):
            if which(t):
                try:
                    t.frames, t.note = stack_of(t, saved)
                except OsvError as e:
                    t.frames, t.note = [], str(e)
    finally:
        if saved:
            context._write_registers(saved)


def where(t: Thread) -> str:
    """Where thread t is, as loader.py's location column (frames.location)."""
    return location(t.frames or [])
