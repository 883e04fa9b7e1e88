"""`osv info threads`, `$osv_thread(ID)`, `$osv_current([CPU])` and the thread
pretty-printer (kernel/core/thread.hh, thread.cc).

The threads come from threadtable (one bulk read of the table and the objects); what
a blocked thread waits for is checked in memory against the mutexes, wait queues and
events it could be in (mutex, net), never guessed from an address.
"""

from __future__ import annotations

from typing import Any

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import (clock, commands, context, debuginfo, fmt, guestmem, mutex, net, percpu, printers, stacks,
                          stacktext, statics)
from osvtrace.gdb.thread import BLOCKED
from osvtrace.gdb.threadtable import Snapshot, snapshot, table_location


# ---------------------------------------------------------------- what a thread waits for

def describe_waits(snap: Snapshot) -> dict[int, str]:
    """tid -> what each blocked thread waits for: `mutex NAME`, `waitqueue NAME`, `join 5`,
    `sleep until 1.234s`. The kind is checked in memory (the thread is in that mutex's or
    wait queue's list), not guessed from an address."""
    clk = clock.clock()
    tl = debuginfo.layout_of("thread")
    timer_off = tl.offset("sleep_timer")
    cache: dict[int, tuple[set[int], set[int]]] = {}
    out: dict[int, str] = {}
    for t in snap.threads:
        if t.state not in BLOCKED and t.state != "waking":
            continue
        if t.state == "sleeping" or (t.wait_obj == t.addr + timer_off):
            due = f" until {clk.ms(t.due) / 1000:.3f}s" if clk and t.timer_armed else ""
            out[t.tid] = f"sleep{due}"
            continue
        obj = t.wait_obj
        if not obj:
            out[t.tid] = "?"
            continue
        inside = snap.owner_of(obj)
        if inside is not None:
            out[t.tid] = f"join {inside.tid}" if obj == inside.addr else f"thread {inside.tid}+{obj - inside.addr:#x}"
            continue
        if obj not in cache:
            cache[obj] = (mutex.waiter_threads(obj), mutex.waitqueue_threads(obj))
        in_mutex, in_wq = cache[obj]
        label = statics.symbolize(obj) or f"{obj:#x}"
        if t.addr in in_mutex:
            out[t.tid] = f"mutex {mutex.mutex_name(obj)}"
        elif t.addr in in_wq:
            out[t.tid] = f"waitqueue {label}"
        elif event_waiter(obj) == t.addr:
            out[t.tid] = event_label(obj, label)
        elif t.state == "waking":
            out[t.tid] = f"woken from {label}"
        else:
            out[t.tid] = label
    return out


def event_waiter(addr: int) -> int:
    """The thread an `event` (core/event.hh) at addr has published as its waiter (0 if
    none, or if addr is no event)."""
    try:
        el = debuginfo.layout_of("event")
        return el.get(guestmem.read_small(addr, el.size), "waiter_")
    except commands.OsvError:
        return 0


def event_label(addr: int, label: str) -> str:
    """`net channel 0x... (udp :7)` for a net channel's event, else `event NAME`."""
    try:
        got = net.event_owner(addr)
    except commands.OsvError:
        got = None
    return got or f"event {label}"


# ---------------------------------------------------------------- the command

def rows(snap: Snapshot) -> list[tuple]:
    clk = clock.clock()
    waits = describe_waits(snap)
    out = []
    for t in snap.threads:
        if t.running:
            last = "now"
        elif not t.switched_tsc:
            last = "never"
        else:
            last = f"{clk.ms(t.switched_tsc) / 1000:.3f}s" if clk else f"tsc {t.switched_tsc}"
        cputime = clk.span(t.run_tsc) if clk else (f"{t.run_tsc} ticks" if t.run_tsc else "0")
        if t.running:
            cputime += "+"  # and its current run, which the kernel adds at its next switch out
        wait = waits.get(t.tid, "-")
        if t.leaving:
            wait += " [still leaving its CPU]"
        elif t.state == "running" and not t.running and t.on_cpu:
            wait += " [its CPU is coming up]"
        out.append((t.tid, t.name, t.cpu if t.cpu >= 0 else "-", t.state, last, cputime, f"{t.addr:#x}", wait))
    return out


HEADER = ("id", "name", "cpu", "state", "last-ran", "cpu-time", "thread", "wait")


class InfoThreads(commands.OsvCommand):
    """List the kernel's threads: id, name, CPU, state, last ran, CPU time, wait object.

    cpu       the CPU running the thread, or the one whose run queue takes it when it wakes
    state     running, runnable, waiting, sleeping, waking (woken, not yet on a run queue),
              dead (exited, not yet joined), creating (id taken, object being set up);
              an idle thread that is switched out shows as runnable
    last-ran  when it last switched in or out (seconds since boot; `now` when running)
    cpu-time  time on a CPU up to its last switch out (`+`: running now, plus this run)
    wait      what a blocked thread waits for: mutex NAME, waitqueue NAME, event NAME,
              net channel ADDR (udp :PORT), join ID, sleep until T; checked in memory
              (the thread is in that mutex's or wait queue's list, or the event's waiter)
    --stacks  then each thread's stack, as `osv mutex` shows the owner's and the waiters'
    Usage: osv info threads [--stacks]
    Example:
      (gdb) osv info threads
    """

    def __init__(self) -> None:
        super().__init__("osv info threads", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        if arg.strip() not in ("", "--stacks", "-s"):
            raise commands.OsvError("usage: osv info threads [--stacks]")
        snap = snapshot()
        if not snap.threads:
            gdb.write("no threads yet (the kernel has not created any)\n")
            return
        gdb.write(fmt.table(rows(snap), HEADER))
        if arg.strip():
            targets = [t for t in snap.threads if t.state != "creating"]
            unwound = context.thread_stacks(targets, snap)
            for t in snap.threads:
                u = unwound.get(t.tid) if t.state != "creating" else \
                    stacks.Unwound(end=stacktext.UNAVAILABLE, detail="being created: no context yet")
                gdb.write(f"\nthread {t.tid} ({t.name}) {t.state}:\n")
                if u is not None:
                    gdb.write("\n".join(stacktext.stack_lines(u.sites, u.end, stacks.MAX_FRAMES, u.detail, "  ")) + "\n")


# ---------------------------------------------------------------- $osv_thread, printer

class ThreadFunction(commands.OsvFunction):
    """$osv_thread(ID): the kernel thread with that id, as a `thread *` (0 if none).

    Example:
      (gdb) p *$osv_thread(2)
      (gdb) p $osv_thread(2)->name
    """

    def __init__(self) -> None:
        super().__init__("osv_thread")

    def run(self, tid: Any) -> Any:
        addr, n = table_location()
        i = int(tid)
        p = guestmem.read_word(addr + guestmem.word() * i) if 0 <= i < n else 0
        return gdb.Value(p).cast(debuginfo.lookup_type("thread").pointer())


class CurrentFunction(commands.OsvFunction):
    """$osv_current([CPU]): the thread running on CPU (default: the CPU gdb has selected).

    Example:
      (gdb) p $osv_current(1)->name
    """

    def __init__(self) -> None:
        super().__init__("osv_current")

    def run(self, *args: Any) -> Any:
        if args:
            c = percpu.cpu_by_id(int(args[0]))
        else:
            gs = int(gdb.parse_and_eval("$gs_base"))
            c = next((c for c in percpu.cpus() if c.addr == gs), None)
            if c is None:
                raise commands.OsvError("this vCPU's %gs does not point at a struct cpu yet")
        return gdb.Value(c.current).cast(debuginfo.lookup_type("thread").pointer())


def print_thread(val: Any) -> str:
    """thread 5 (holder) waiting on mutex gdbcheck::held, cpu 1"""
    addr = printers.value_address(val)
    tl = debuginfo.layout_of("thread")
    buf = guestmem.read_static(addr, tl.size)
    states = debuginfo.enum_names("thread_state")
    tid, name = tl.get(buf, "id"), tl.text(buf, "name")
    state = states.get(tl.get(buf, "state"), f"state {tl.get(buf, 'state')}")
    if not tid:
        return f"thread (unused slot) at {addr:#x}"
    text = f"thread {tid} ({name}) {state}"
    if state in BLOCKED and guestmem.connected():
        try:
            snap = snapshot()
            text += f": {describe_waits(snap).get(tid, '?')}"
        except commands.OsvError:
            pass
    return text


def register() -> None:
    InfoThreads()
    ThreadFunction()
    CurrentFunction()
    printers.PRINTERS.add("thread", print_thread)
