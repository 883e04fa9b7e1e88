"""lockfree::mutex (OSv's one mutex; a pthread_mutex_t holds a pointer to one, allocated
on first use): owner, depth, count, waiters in hand-off order (the queue_mpsc's poplist,
then its pushlist reversed, as pop() takes them), a hand-off in progress; and what a
thread waits for, read from its frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import guestmem, lists
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import layout_of
from osvtrace.gdb.kernels.osv.reading import read_fields, symbol_label, type_name
from osvtrace.gdb.kernels.osv.stacks import stack_lines, with_stacks
from osvtrace.gdb.kernels.osv.syms import load_app_symbols
from osvtrace.gdb.kernels.osv.threads import Snapshot, Thread, snapshot
from osvtrace.gdb.stacks import parse_stack_flag


MAX_WAITERS = 10_000


def pthread_mutex_target(addr: int) -> int:
    """The lockfree::mutex behind a pthread_mutex_t (libc/pthread.cc: a lazy_indirect, the
    mutex allocated on first use; 0 if never used)."""
    return guestmem.read_word(addr)


def _safe(f: Callable[[int], int], a: int) -> int:
    try:
        return f(a) if a else 0
    except OsvError:
        return 0


def mutex_label(m: int, pm: int = 0) -> str:
    if pm:
        return f"{symbol_label(pm)} -> {m:#x}" if m else symbol_label(pm)
    return symbol_label(m)


def wait_of(t: Thread) -> tuple[str, int]:
    """(what a waiting thread waits for, the lockfree::mutex address if a mutex)."""
    if not t.frames:
        return "-", 0
    pm = next((fr.pmutex for fr in t.frames if fr.pmutex), 0)
    for fr in t.frames:
        if fr.mutex or fr.function.startswith("lockfree::mutex::lock"):
            m = fr.mutex or _safe(pthread_mutex_target, pm)
            if not m and not pm:
                return "mutex (its address is optimized out in this frame)", 0
            return f"mutex {mutex_label(m, pm)}", m
        if fr.condvar:
            return f"condvar {symbol_label(fr.condvar)}", 0
        if fr.join:
            return f"join {fr.join:#x}", 0
        if fr.function.startswith(("sched::thread::sleep", "nanosleep", "usleep")):
            return "sleep", 0
    return "-", 0


@dataclass
class Mutex:
    addr: int
    count: int
    depth: int
    owner: int
    handoff: int
    sequence: int
    waiters: list[int]  # thread* in hand-off order
    problem: str = ""


def read_mutex(addr: int) -> Mutex:
    ml = layout_of("lockfree::mutex")
    f = read_fields(addr, ml, ["count", "depth", "owner", "waitqueue.pushlist", "waitqueue.poplist", "handoff",
                               "sequence"])
    wl = layout_of("wait_record")
    next_off, t_off = wl.offset("next"), wl.offset("t")
    pop = lists.walk_chain(f["waitqueue.poplist"], next_off, limit=MAX_WAITERS, what="mutex wait queue")
    push = lists.walk_chain(f["waitqueue.pushlist"], next_off, limit=MAX_WAITERS, what="mutex wait queue")
    waiters = []
    for wr in pop.items + push.items[::-1]:
        try:
            waiters.append(guestmem.read_word(wr + t_off))
        except OsvError:
            waiters.append(0)
    count = f["count"]
    count = count - (1 << 32) if count >= 1 << 31 else count
    return Mutex(addr, count, f["depth"], f["owner"], f["handoff"], f["sequence"], waiters, pop.problem or push.problem)


def describe_mutex(m: Mutex, snap: Snapshot, label: str, show_stacks: bool = False) -> list[str]:
    """The mutex in words; with show_stacks, the owner's and each waiter's stack (unwound
    before: with_stacks) under it."""
    owner = snap.describe(m.owner) if m.owner else "none"
    waiting = ", ".join(snap.describe(w) if w else "(woken)" for w in m.waiters) or "none"
    lines = [f"mutex {label}: owner {owner}, depth {m.depth}, count {m.count}, waiters [{waiting}]"]
    if m.handoff:
        lines.append(f"  hand-off in progress (token {m.handoff}): the lock is being passed to a waiter")
    elif m.count > 0 and not m.owner:
        lines.append("  count > 0 and no owner: between lock's increment and its owner store, or a hand-off")
    if m.problem:
        lines.append(f"  note: {m.problem}")
    if show_stacks:
        for role, addr in [("owner", m.owner)] + [("waiter", w) for w in m.waiters]:
            t = snap.by_addr.get(addr) if addr else None
            if t is not None:
                lines.append(f"  {role} {t.tid} ({t.name}) {t.state}:")
                lines += stack_lines(t, "    ")
    return lines


def _stacks_for(snap: Snapshot, mutexes: list[Mutex]) -> None:
    """Unwind the owners and waiters of these mutexes not unwound yet."""
    want = {a for m in mutexes for a in [m.owner, *m.waiters] if a}
    with_stacks(snap, lambda t: t.addr in want and t.frames is None)


def mutex_arg(arg: str) -> tuple[int, int]:
    """(lockfree::mutex address, pthread_mutex_t address or 0) from a command argument: a
    pthread_mutex_t (the app's; libc/pthread.cc keeps a pointer to the real mutex in it), a
    lockfree::mutex, a pointer to either, or an address (taken as a lockfree::mutex)."""
    addr, _t = guestmem.address_arg(arg, "a mutex")
    v = gdb.parse_and_eval(arg)
    t = v.type.target() if v.type.strip_typedefs().code == gdb.TYPE_CODE_PTR else v.type
    names = {str(t), type_name(t), type_name(t.strip_typedefs())}
    if any("pthread_mutex_t" in n for n in names):
        return pthread_mutex_target(addr), addr
    if t.strip_typedefs().code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_ENUM) or names & {"lockfree::mutex", "mutex_t",
                                                                                      "mutex"}:
        return addr, 0
    raise OsvError(f"{arg!r} is a {t}, not a lockfree::mutex or a pthread_mutex_t")


def mutex_cmd(arg: str, from_tty: bool) -> None:
    arg, show_stacks = parse_stack_flag(arg.strip(), default=True)
    arg = arg.strip()
    snap = snapshot()
    if arg and arg != "all":
        load_app_symbols(quiet=True)  # the app's mutexes are named by its symbols
        m, pm = mutex_arg(arg)
        if not m:
            gdb.write(f"mutex {symbol_label(pm)}: never locked (its lockfree::mutex is not allocated yet)\n")
            return
        mx = read_mutex(m)
        if show_stacks:
            _stacks_for(snap, [mx])
        for ln in describe_mutex(mx, snap, mutex_label(m, pm), show_stacks):
            gdb.write(ln + "\n")
        return
    # Every mutex some thread is waiting for (read from the stacks of the waiting threads).
    with_stacks(snap, lambda t: t.state in ("waiting", "sending_lock", "waking") and t.vcpu is None)
    found: dict[int, str] = {}
    for t in snap.threads:
        if t.frames:
            wait, m = wait_of(t)
            if m and m not in found:
                found[m] = wait.removeprefix("mutex ")
    if not found:
        gdb.write("no thread is waiting for a mutex (give one: osv mutex EXPR)\n")
    read: dict[int, Mutex | OsvError] = {}
    for m in found:
        try:
            read[m] = read_mutex(m)
        except OsvError as e:
            read[m] = e
    if show_stacks:
        _stacks_for(snap, [mx for mx in read.values() if isinstance(mx, Mutex)])
    for m, label in found.items():
        mx = read[m]
        lines = describe_mutex(mx, snap, label, show_stacks) if isinstance(mx, Mutex) else [f"mutex {label}: {mx}"]
        for ln in lines:
            gdb.write(ln + "\n")
    if snap.problem:
        gdb.write(f"osv: note: {snap.problem}\n")
