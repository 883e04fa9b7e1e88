"""A `thread *` named as `5 (holder)` (kernel/core/thread.hh, struct thread).

The lowest of the three thread modules: percpu, mutex, net and memory name the
threads they show through it. Above it, threadtable reads every thread at one stop
(it needs the CPUs, so percpu sits between them); threads, on top, has `osv info
threads`, which asks mutex and net what each blocked thread waits for.
"""

from __future__ import annotations

from typing import Any

from osvtrace.gdb import commands, debuginfo, guestmem

BLOCKED = ("waiting", "sleeping")  # thread_state values of a thread that waits for something


class Names:
    """thread* -> '5 (holder)', read lazily (for commands that name a few threads). With a
    snapshot (threadtable.Snapshot, or anything with `by_addr`: address -> thread) the
    names come from it, without reading memory."""

    def __init__(self, snap: Any = None) -> None:
        self.snap = snap
        self.cache: dict[int, str] = {}

    def describe(self, addr: int) -> str:
        if not addr:
            return "-"
        got = self.cache.get(addr)
        if got is not None:
            return got
        t = self.snap.by_addr.get(addr) if self.snap else None
        if t is not None:
            got = f"{t.tid} ({t.name})"
        else:
            try:
                layout = debuginfo.layout_of("thread")
                buf = guestmem.read_small(addr, layout.size)
                got = f"{layout.get(buf, 'id')} ({layout.text(buf, 'name')})"
            except commands.OsvError:
                got = f"{addr:#x} (unreadable)"
        self.cache[addr] = got
        return got

    def tid(self, addr: int) -> int:
        t = self.snap.by_addr.get(addr) if self.snap else None
        if t is not None:
            return t.tid
        layout = debuginfo.layout_of("thread")
        return layout.get(guestmem.read_small(addr, layout.size), "id")


def names() -> Names:
    return Names()
