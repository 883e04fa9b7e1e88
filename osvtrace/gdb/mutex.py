"""`osv mutex [ADDR|all]` and the mutex and wait-queue pretty-printers
(kernel/lib/lfmutex.hh, core/mutex.hh, core/waitqueue.hh).

The lock-free mutex is an atomic count, an owner, a lock-free queue of waiter
records (on the waiters' stacks) and a hand-off token. Every layout, including
the waiter record's, comes from the mutex type's debug info (the waiter type is
the queue's template argument).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import (commands, context, debuginfo, fmt, guestmem, lists, printers, stacks, stacktext, statics, thread,
                          threadtable)

MAX_WAITERS = 4096  # bound on list walks (more than the kernel's thread ids)


def mutex_type() -> Any:
    return debuginfo.lookup_type("mutex").strip_typedefs()


def waiter_type() -> Any:
    """lockfree::mutex<P>::waiter: the element type of the mutex's queue."""
    q = debuginfo.layout_of_type(mutex_type()).field("queue_")[2]
    return debuginfo.layout_of_type(q).field("pushed_")[2].template_argument(0).target().strip_typedefs()


@dataclass
class Waiter:
    record: int  # address of the waiter record (on its thread's stack)
    thread: int
    handed: bool


@dataclass
class Mutex:
    addr: int
    count: int  # holder (0/1) + lockers past their fetch_add not yet handed the mutex
    depth: int
    owner: int  # thread*
    seq: int  # hand-off tokens issued so far
    handoff: int  # 0, or (sequence << 32) | unlocker tid
    waiters: list[Waiter] = field(default_factory=list)
    problem: str = ""

    @property
    def token(self) -> tuple[int, int] | None:
        """(sequence, unlocker tid) of a pending hand-off token: lfmutex.hh packs them as
        (sequence << tid bits) | tid, the tid as wide as thread::id."""
        if not self.handoff:
            return None
        bits = 8 * debuginfo.layout_of("thread").field("id")[1]
        return self.handoff >> bits, self.handoff & ((1 << bits) - 1)


def read_mutex(addr: int, *, reader: Any = None) -> Mutex:
    """The mutex at addr, with its waiters in the order they will be handed the mutex."""
    reader = reader or guestmem.read_small
    mt = mutex_type()
    ml = debuginfo.layout_of_type(mt)
    buf = reader(addr, ml.size)
    m = Mutex(addr, ml.get(buf, "count_", signed=True), ml.get(buf, "depth_"), ml.get(buf, "owner_"),
              ml.get(buf, "seq_"), ml.get(buf, "handoff_"))
    wt = waiter_type()
    wl = debuginfo.layout_of_type(wt)
    w = lists.walk_mpsc(addr + ml.offset("queue_"), ml.field("queue_")[2], wl.offset("next"), limit=MAX_WAITERS,
                         what="the wait queue")
    m.problem = w.problem
    for rec in w.items:
        try:
            rb = guestmem.read_small(rec, wl.size)
        except commands.OsvError:
            m.problem = m.problem or f"waiter record {rec:#x} is unreadable"
            break
        m.waiters.append(Waiter(rec, wl.get(rb, "t"), bool(wl.get(rb, "handed"))))
    return m


def waiter_threads(addr: int) -> set[int]:
    """The threads queued on the mutex at addr (empty if addr is no mutex)."""
    try:
        return {w.thread for w in read_mutex(addr).waiters}
    except commands.OsvError:
        return set()


def waitqueue_records(addr: int) -> tuple[list[tuple[int, int, bool]], str]:
    """([(record, thread, woken)], problem) of the wait queue at addr, in wake order."""
    wq = debuginfo.layout_of("waitqueue")
    rec_t = debuginfo.lookup_type("waitqueue::record")
    rl = debuginfo.layout_of_type(rec_t)
    lst = debuginfo.layout_of_type(wq.field("waiters_")[2])
    w = lists.walk_list(addr + wq.offset("waiters_"), lst, rl.offset("node"), limit=MAX_WAITERS,
                         what="the waiter list")
    out = []
    for rec in w.items:
        try:
            rb = guestmem.read_small(rec, rl.size)
        except commands.OsvError:
            return out, f"waiter record {rec:#x} is unreadable"
        out.append((rec, rl.get(rb, "t"), bool(rl.get(rb, "woken"))))
    return out, w.problem


def waitqueue_threads(addr: int) -> set[int]:
    try:
        return {t for _, t, _ in waitqueue_records(addr)[0]}
    except commands.OsvError:
        return set()


def mutex_name(addr: int) -> str:
    return statics.symbolize(addr, mutex_type().name) or f"{addr:#x}"


# ---------------------------------------------------------------- describing one mutex

def handoff_state(m: Mutex, snap: Any) -> str:
    """The hand-off state in words (lfmutex.hh's invariants)."""
    queued = len(m.waiters)
    if m.token:
        seq, tid = m.token
        return (f"token {seq} left by thread {tid}'s unlock: the next locker to queue (or try_lock) takes the "
                "mutex")
    if m.owner:
        arriving = m.count - 1 - queued
        if arriving > 0:
            return f"none; {arriving} locker(s) past the count, not queued yet"
        return "none"
    if m.count <= 0:
        return "none (free)"
    # count > 0 and no owner: handed over, and the new owner has not run yet.
    if snap is not None:
        targets = [t for t in snap.threads if t.wait_obj == m.addr and t.addr not in {w.thread for w in m.waiters}
                   and t.state in ("waking", "runnable", "running")]
        if targets:
            who = ", ".join(f"{t.tid} ({t.name}, {t.state})" for t in targets)
            return f"in flight: handed to {who}, which has not taken it yet"
    return "in flight: handed to a waiter that has not taken it yet"


def stacks_of(m: Mutex, snap: Any) -> dict[int, stacks.Unwound]:
    """The stacks of the mutex's owner and waiters (thread* -> its stack, unwound by gdb)."""
    if snap is None:
        return {}
    want = [snap.by_addr[a] for a in dict.fromkeys([m.owner] + [w.thread for w in m.waiters]) if a in snap.by_addr]
    by_tid = context.thread_stacks(want, snap)
    return {t.addr: by_tid[t.tid] for t in want if t.tid in by_tid}


def _stack(out: list[str], u: stacks.Unwound | None, indent: str) -> None:
    if u is not None:
        out.extend(stacktext.stack_lines(u.sites, u.end, stacks.MAX_FRAMES, u.detail, indent))


def describe(m: Mutex, snap: Any, stacks_by_thread: dict[int, stacks.Unwound] | None = None) -> list[str]:
    """The mutex in words; with stacks_by_thread, each thread's stack under it."""
    names = thread.Names(snap)
    st = stacks_by_thread or {}
    out = [f"mutex {mutex_name(m.addr)} at {m.addr:#x}"]
    if m.owner:
        out.append(f"  owner     thread {names.describe(m.owner)}, depth {m.depth}")
        _stack(out, st.get(m.owner), "      ")
    else:
        out.append("  owner     none")
    if m.waiters:
        out.append(f"  waiters   {len(m.waiters)}, in hand-off order:")
        for i, w in enumerate(m.waiters, 1):
            flag = " (handed)" if w.handed else ""
            out.append(f"    {i}. thread {names.describe(w.thread)}{flag}  record {w.record:#x}")
            _stack(out, st.get(w.thread), "         ")
    else:
        out.append("  waiters   none")
    out.append(f"  hand-off  {handoff_state(m, snap)}")
    out.append(f"  counters  count {m.count} (holder + lockers not yet handed it), depth {m.depth}, "
               f"tokens issued {m.seq}")
    if m.problem:
        out.append(f"  note      {m.problem}")
    return out


def all_mutexes(snap: Any) -> list[tuple[str, int]]:
    """(name, address) of every mutex in static storage, and of every mutex a thread is
    blocked in (found through its wait object, checked in the mutex's queue)."""
    target = mutex_type().name
    found: dict[int, str] = {}
    for name, addr, _ in statics.find_objects(lambda t: t.name == target):
        found.setdefault(addr, name)
    if snap is not None:
        for t in snap.threads:
            if t.state == "waiting" and t.wait_obj and t.wait_obj not in found and t.addr in waiter_threads(t.wait_obj):
                found[t.wait_obj] = mutex_name(t.wait_obj)
    return sorted(((n, a) for a, n in found.items()), key=lambda x: x[1])


class MutexCommand(commands.OsvCommand):
    """Show a mutex: owner, waiters in hand-off order, hand-off state, counters, stacks.

    Usage: osv mutex [--no-stacks] EXPR   a mutex object, a pointer to one, or an address
           osv mutex [-s|--stacks] [all]  every mutex in static storage or with a blocked thread
    The waiters are listed in the order unlock() will hand the mutex over. The hand-off
    state tells a pending token (an unlocker found the queue empty) from a hand-off in
    flight (the new owner has not run yet); `count` is the holder plus every locker past
    its atomic increment. Under the owner and each waiter, its stack as `bt` shows it
    (gdb unwinds its saved context, or its vCPU if it runs), function+offset and file:line,
    up to 64 frames; a stack cut by that bound, looping, or reaching code outside the
    kernel says so on its last line. `osv mutex all --stacks` adds every held or contended
    mutex with its stacks after the table.
    Example:
      (gdb) osv mutex gdbcheck::held
      (gdb) osv mutex --no-stacks 0x17d4c0
      (gdb) osv mutex all
    """

    def __init__(self) -> None:
        super().__init__("osv mutex", gdb.COMMAND_DATA, gdb.COMPLETE_EXPRESSION)

    def run(self, arg: str, from_tty: bool) -> None:
        arg, show_stacks = stacks.parse_stack_flag(arg.strip(), default=arg.strip() not in ("", "all"))
        arg = arg.strip()
        guestmem.inferior()
        try:
            snap = threadtable.snapshot()
        except commands.OsvError:
            snap = None  # still booting: mutexes are readable all the same
        if arg in ("", "all"):
            self.all(snap, show_stacks)
            return
        addr, t = guestmem.address_arg(arg, "a mutex")
        mt = mutex_type()
        if t is not None and t.name != mt.name:
            if t.name == "waitqueue":
                addr += debuginfo.layout_of("waitqueue").offset("m_")
            else:
                raise commands.OsvError(f"{arg!r} is a {t.name or t}, not a mutex")
        m = read_mutex(addr)
        gdb.write("\n".join(describe(m, snap, stacks_of(m, snap) if show_stacks else None)) + "\n")

    def all(self, snap: Any, show_stacks: bool = False) -> None:
        names = thread.Names(snap)
        rows = []
        busy: list[Mutex] = []
        for name, addr in all_mutexes(snap):
            try:
                m = read_mutex(addr)
            except commands.OsvError as e:
                rows.append((f"{addr:#x}", name, "?", "?", "?", str(e)))
                continue
            waiters = ",".join(str(names.tid(w.thread)) for w in m.waiters) or "-"
            state = "held" if m.owner else ("free" if m.count <= 0 and not m.token else "hand-off")
            owner = names.describe(m.owner) if m.owner else "-"
            rows.append((f"{addr:#x}", name, state, owner, m.count, waiters + (f" ({m.problem})" if m.problem else "")))
            if m.owner or m.waiters:
                busy.append(m)
        if not rows:
            gdb.write("no mutexes found\n")
            return
        gdb.write(fmt.table(rows, ("mutex", "name", "state", "owner", "count", "waiters")))
        if show_stacks:
            for m in busy:
                gdb.write("\n" + "\n".join(describe(m, snap, stacks_of(m, snap))) + "\n")


# ---------------------------------------------------------------- pretty-printers

def print_mutex(val: Any) -> str:
    """mutex held by 4 (holder) depth 1, waiters [7 (waiter-1), 8 (waiter-2)]"""
    m = read_mutex(printers.value_address(val), reader=guestmem.read_static)
    names = thread.Names()
    if m.owner:
        text = f"mutex held by {names.describe(m.owner)}, depth {m.depth}"
    elif m.count > 0 or m.token:
        text = "mutex in hand-off"
    else:
        text = "mutex free"
    if m.waiters:
        text += ", waiters [" + ", ".join(names.describe(w.thread) for w in m.waiters) + "]"
    if m.token:
        text += f", token {m.token[0]} from thread {m.token[1]}"
    return text + (f" ({m.problem})" if m.problem else "")


def print_waitqueue(val: Any) -> str:
    """waitqueue, waiters [4 (holder), 5 (parked-1)]"""
    recs, problem = waitqueue_records(printers.value_address(val))
    names = thread.Names()
    text = "waitqueue, " + (f"waiters [{', '.join(names.describe(t) for _, t, _ in recs)}]" if recs else "no waiters")
    return text + (f" ({problem})" if problem else "")


def register() -> None:
    MutexCommand()
    printers.PRINTERS.add(lambda: mutex_type().name, print_mutex, "mutex")
    printers.PRINTERS.add("waitqueue", print_waitqueue)
