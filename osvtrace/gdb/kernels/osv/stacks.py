"""A thread's stack: its saved rsp/rbp/rip (thread_state, written by switch_to) loaded
into a vCPU, or its own vCPU when it runs, and gdb's unwinder. Frames that lock a mutex,
wait on a condvar or join a thread keep the object they name."""

from __future__ import annotations

from typing import Any, Callable

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import context, stacks, stacktext
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.kernels.osv.frames import Frame, location
from osvtrace.gdb.kernels.osv.syms import load_app_symbols
from osvtrace.gdb.kernels.osv.threads import Snapshot, Thread


def _frame_arg(f: Any, name: str) -> int:
    try:
        return int(f.read_var(name)) & ((1 << 64) - 1)
    except (gdb.error, ValueError, RuntimeError):
        return 0


def _objects(f: Any, name: str) -> dict[str, int]:
    """What a frame that locks a mutex, waits on a condvar or joins a thread names, read
    from its arguments while gdb's frame is valid (Frame's fields)."""
    if name.startswith("lockfree::mutex::lock") or name.startswith("lockfree::mutex::send_lock"):
        return {"mutex": _frame_arg(f, "this")}
    if name in ("pthread_mutex_lock", "pthread_mutex_timedlock"):
        return {"pmutex": _frame_arg(f, "m")}
    if name.startswith("condvar::wait") or name.startswith("condvar_wait"):
        return {"condvar": _frame_arg(f, "this") or _frame_arg(f, "condvar")}
    if name in ("pthread_cond_wait", "pthread_cond_timedwait"):
        return {"condvar": _frame_arg(f, "cond")}
    if name.startswith("sched::thread::join"):
        return {"join": _frame_arg(f, "this")}
    return {}


def _walk_frames(limit: int = stacks.MAX_FRAMES) -> tuple[list[Frame], str]:
    """The selected vCPU's frames (gdb's unwinder, shared with our kernel: osvtrace.gdb.stacks),
    and why the stack ends early ('' if it reached the thread's first frame)."""
    u = stacks.unwind(limit, _objects)
    frames = [Frame(st.pc, st.function or "??", st.source or st.obj, site=st, **objs)
              for st, objs in zip(u.sites, u.extra)]
    return frames, stacktext.ending(u.end, len(frames), limit, u.detail)


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


def stack_lines(t: Thread, indent: str = "  ") -> list[str]:
    """Thread t's unwound frames as `bt` prints them (osvtrace.gdb.stacktext), and why the
    stack ends early, if it does."""
    sites = [fr.site for fr in t.frames or [] if fr.site is not None]
    out = [indent + stacktext.frame_line(i, st) for i, st in enumerate(sites)]
    if t.note or not sites:
        out.append(f"{indent}({t.note or 'no frames'})")
    return out
