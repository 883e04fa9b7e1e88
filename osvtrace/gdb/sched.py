"""`osv runqueue [CPU]`: each CPU's run queue and wake-up queue (kernel/core/sched.cc).

A CPU's run queue is an intrusive list of threads (thread::rq_node); other CPUs
hand it threads through its lock-free `incoming` queue (thread::wake_next).
Both are walked with bounds and cycle checks: a CPU stopped in the middle of
changing them gives a note, not a hang.
"""

from __future__ import annotations

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo, lists, percpu, threadtable

MAX_QUEUE = 4096


def run_queue(c: percpu.Cpu) -> lists.Walk:
    """Threads on c's run queue, front (next to run) first."""
    cl = debuginfo.layout_of("cpu")
    tl = debuginfo.layout_of("thread")
    lst = debuginfo.layout_of_type(cl.field("runqueue")[2])
    return lists.walk_list(c.addr + cl.offset("runqueue"), lst, tl.offset("rq_node"), limit=MAX_QUEUE,
                            what=f"cpu {c.id}'s run queue")


def incoming(c: percpu.Cpu) -> lists.Walk:
    """Threads other CPUs handed to c (woken or migrated), not yet on its run queue."""
    cl = debuginfo.layout_of("cpu")
    tl = debuginfo.layout_of("thread")
    return lists.walk_mpsc(c.addr + cl.offset("incoming"), cl.field("incoming")[2], tl.offset("wake_next"),
                            limit=MAX_QUEUE, what=f"cpu {c.id}'s wake-up queue")


def _entry(snap: threadtable.Snapshot, addr: int) -> str:
    t = snap.by_addr.get(addr)
    if t is None:
        return f"{addr:#x} (not in the thread table)"
    pin = ", pinned" if t.pinned else ""
    return f"{t.tid} ({t.name}) {t.state}{pin}"


class Runqueue(commands.OsvCommand):
    """Show each CPU's running thread, run queue and pending wake-ups.

    The run queue in the order its threads will run; the wake-up queue holds threads
    other CPUs handed this one (woken or migrated) that it has not taken yet.

    Usage: osv runqueue [CPU]
    Example:
      (gdb) osv runqueue
      (gdb) osv runqueue 1
    """

    def __init__(self) -> None:
        super().__init__("osv runqueue", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        want = commands.parse_cpu(arg, "osv runqueue [CPU]")
        snap = threadtable.snapshot()
        if not snap.cpus:
            raise commands.OsvError("no CPU is set up yet (the kernel is still booting: ncpus is 0)")
        sel = [c for c in snap.cpus if want is None or c.id == want]
        if not sel:
            raise commands.OsvError(f"no CPU {want} (online: {', '.join(str(c.id) for c in snap.cpus)})")
        out = []
        for c in sel:
            t = snap.by_addr.get(c.current)
            cur = (f"{t.tid} ({t.name})" if t else f"{c.current:#x}") if c.current else "nothing yet"
            idle = " [its idle thread]" if c.current == c.idle else ""
            out.append(f"cpu {c.id}: running {cur}{idle}")
            rq = run_queue(c)
            out.append(f"  run queue: {len(rq.items)} thread(s) (nr_queued {c.get('nr_queued')})")
            out += [f"    {i}. {_entry(snap, a)}" for i, a in enumerate(rq.items, 1)]
            if rq.problem:
                out.append(f"    note: {rq.problem}")
            inc = incoming(c)
            out.append(f"  wake-ups pending: {len(inc.items)} (nr_incoming {c.get('nr_incoming')})")
            out += [f"    {i}. {_entry(snap, a)}" for i, a in enumerate(inc.items, 1)]
            if inc.problem:
                out.append(f"    note: {inc.problem}")
            homed = sum(1 for t in snap.threads if t.home == c.addr and t.addr != c.idle
                        and t.state not in ("dead", "creating"))
            out.append(f"  homed here: {homed} live thread(s) besides its idle thread (nr_homed {c.get('nr_homed')})")
        gdb.write("\n".join(out) + "\n")


def register() -> None:
    Runqueue()
