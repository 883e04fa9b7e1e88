"""`osv info threads`: the kernel's threads (kernel/core/thread.hh, percpu.hh).

Walks the scheduler's own thread table (`threads::table`, thread* indexed by
id) and the per-CPU structures through debug info; one memory read per thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import common

TABLE_SYMBOL = "threads::(anonymous namespace)::table"


@dataclass
class ThreadInfo:
    tid: int
    name: str
    cpu: int  # the CPU running it, else its home CPU; -1 if unknown
    state: str
    addr: int
    on_cpu: bool


def cpus() -> Iterator[tuple[int, int, int]]:
    """(cpu id, struct cpu address, current thread address) of each online CPU."""
    layout = common.layout_of("cpu")
    ptr_size = common.lookup_type("cpu").pointer().sizeof
    # ncpus may be a plain or an atomic integer: read it at its own size.
    n = int.from_bytes(common.read_small(common.symbol_address("ncpus"), common.symbol_type("ncpus").sizeof), "little")
    cpus_type = common.symbol_type("cpus")
    max_cpus = cpus_type.sizeof // ptr_size
    if n == 0:
        return  # before boot: no CPU is set up yet
    if n > max_cpus:
        raise common.OsvError(f"ncpus is {n}, more than the {max_cpus} entries of cpus[]: memory looks damaged")
    arr = common.read_small(common.symbol_address("cpus"), ptr_size * n)
    for i in range(n):
        addr = int.from_bytes(arr[i * ptr_size:(i + 1) * ptr_size], "little")
        if not addr:
            continue
        buf = common.read_small(addr, layout.size)
        yield layout.get(buf, "id"), addr, layout.get(buf, "current")


def _table_entries() -> Iterator[tuple[int, bytes | None]]:
    """(thread address, its bytes if already read) for every used entry of the scheduler's
    thread table, whichever shape it has: thread*[N] (objects on the heap) or thread[N]."""
    layout = common.layout_of("thread")
    table_type = common.symbol_type(TABLE_SYMBOL, static=True).strip_typedefs()
    table_addr = common.symbol_address(TABLE_SYMBOL, static=True)
    elem = table_type.target().strip_typedefs()
    ptr_size = common.lookup_type("thread").pointer().sizeof
    # A pointer, or a pointer in a wrapper such as std::atomic<thread*>: one pointer-sized word.
    pointers = elem.code == gdb.TYPE_CODE_PTR or elem.sizeof == ptr_size
    if not pointers and elem.sizeof != layout.size:
        raise common.OsvError(f"{TABLE_SYMBOL} holds {elem} ({elem.sizeof} bytes): neither thread pointers nor "
                              f"threads ({layout.size} bytes)")
    raw = common.read(table_addr, table_type.sizeof)  # bulk: pmemsave when it is large
    size = elem.sizeof
    for i in range(len(raw) // size):
        entry = raw[i * size:(i + 1) * size]
        if pointers:
            addr = int.from_bytes(entry, "little")
            if addr:
                yield addr, None
        elif layout.get(entry, "id"):
            yield table_addr + i * size, entry


def threads() -> Iterator[ThreadInfo]:
    """Every thread in the scheduler's table, by id."""
    layout = common.layout_of("thread")
    states = common.enum_names("thread_state")
    cpu_by_addr = {}
    running_on = {}
    for cid, caddr, cur in cpus():
        cpu_by_addr[caddr] = cid
        running_on[cur] = cid
    for addr, buf in _table_entries():
        if buf is None:
            buf = common.read_small(addr, layout.size)
        state = layout.get(buf, "state")
        cpu = running_on.get(addr, cpu_by_addr.get(layout.get(buf, "home"), -1))
        yield ThreadInfo(layout.get(buf, "id"), layout.text(buf, "name"), cpu, states.get(state, f"state {state}"),
                         addr, bool(layout.get(buf, "on_cpu")))


class InfoThreads(common.OsvCommand):
    """List the kernel's threads: id, name, CPU, state (running, runnable, waiting, sleeping, dead).

    CPU is the CPU running the thread, or the one whose run queue takes it when it wakes.
    Example:
      (gdb) osv info threads
    """

    def __init__(self) -> None:
        super().__init__("osv info threads", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        if arg.strip():
            raise common.OsvError("osv info threads takes no arguments")
        rows = [(t.tid, t.name, t.cpu, t.state, f"{t.addr:#x}") for t in threads()]
        if not rows:
            gdb.write("no threads yet (the kernel has not created any)\n")
            return
        gdb.write(common.table(rows, ("id", "name", "cpu", "state", "thread")))


def register() -> None:
    InfoThreads()
