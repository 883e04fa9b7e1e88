"""Every thread at one stop: the scheduler's thread table (`osvtrace_thread_table`,
thread* indexed by id; kernel/core/thread.cc) and the CPUs, with each thread's state,
CPU and scheduler fields.

All thread objects are read in one bulk read (they live in one static array) and turned
into numpy columns through a record type built from debug info: 1,000 threads cost two
reads, not 1,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo, fmt, guestmem, percpu

TABLE_SYMBOL = "osvtrace_thread_table"  # thread.cc: a pointer to the table
TABLE_ARRAY = "threads::(anonymous namespace)::table"  # the table itself (older kernels)

# struct thread field -> column name; the optional ones are debugging aids a kernel may lack.
COLUMNS = {"id": "id", "state": "state", "on_cpu": "on_cpu", "pinned": "pinned", "name": "name", "home": "home",
           "saved_rsp": "saved_rsp", "stack": "stack", "stack_size": "stack_size",
           "nr_switches_in": "switches", "sleep_timer.due": "due", "sleep_timer.node.next": "timer_armed"}
OPTIONAL = {"wait_obj": "wait_obj", "switched_tsc": "switched_tsc", "run_tsc": "run_tsc"}


@dataclass
class Thread:
    tid: int
    name: str
    addr: int
    state: str  # the kernel's thread_state, or `creating` while an id is being set up
    cpu: int  # the CPU running it, else its home CPU; -1 if unknown
    running: bool  # some CPU's current thread
    on_cpu: bool  # a CPU runs it or is still switching away from it
    pinned: bool
    home: int  # struct cpu*
    wait_obj: int
    switched_tsc: int
    run_tsc: int
    switches: int
    due: int  # sleep timer deadline (TSC), when armed
    timer_armed: bool
    saved_rsp: int
    stack: int
    stack_size: int

    @property
    def leaving(self) -> bool:
        """Switched away from in the scheduler, but its CPU has not left its stack yet."""
        return self.on_cpu and not self.running and self.state != "running"


@dataclass
class Snapshot:
    """Every thread and CPU, read at one stop."""

    threads: list[Thread]
    cpus: list[percpu.Cpu]
    pool: tuple[int, int] = (0, 0)  # [lo, hi) of the thread objects (for 'inside a thread' tests)
    by_addr: dict[int, Thread] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_addr = {t.addr: t for t in self.threads}

    def by_id(self, tid: int) -> Thread:
        for t in self.threads:
            if t.tid == tid:
                return t
        ids = ", ".join(str(t.tid) for t in self.threads[:20])
        more = " ..." if len(self.threads) > 20 else ""
        raise commands.OsvError(f"no thread {tid} (threads: {ids or 'none yet'}{more})")

    def owner_of(self, addr: int) -> Thread | None:
        """The thread object containing addr (its sleep timer, say)."""
        size = debuginfo.layout_of("thread").size
        for t in self.threads:
            if t.addr <= addr < t.addr + size:
                return t
        return None


def table_location() -> tuple[int, int]:
    """(address, entries) of the thread table."""
    ptr = debuginfo.lookup_type("thread").pointer().sizeof
    guestmem.inferior()
    try:
        sym = debuginfo.symbol(TABLE_SYMBOL, False)
        n = int(gdb.parse_and_eval("threads_max"))
    except (commands.OsvError, gdb.error):
        t = debuginfo.symbol_type(TABLE_ARRAY, static=True).strip_typedefs()
        return debuginfo.symbol_address(TABLE_ARRAY, static=True), t.sizeof // ptr
    addr = guestmem.read_word(int(sym.value().address))
    if not addr:
        raise commands.OsvError(f"{TABLE_SYMBOL} is 0: the kernel's data is not set up (stopped before boot?)")
    return addr, n


def _dtype() -> np.dtype:
    layout = debuginfo.layout_of("thread")
    cols = dict(COLUMNS)
    cols.update({k: v for k, v in OPTIONAL.items() if layout.has(k)})
    return layout.dtype(cols)


def _objects(ptrs: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The thread objects the pointers name, as a record array in pointer order.

    They sit in one static array (thread.cc's pool), so one bulk read of the span they
    cover does; pointers spread wider (a kernel that allocates threads) are read one by one."""
    dt = _dtype()
    size = dt.itemsize
    if not len(ptrs):
        return np.zeros(0, dt), 0, 0
    lo, hi = int(ptrs.min()), int(ptrs.max()) + size
    if hi - lo <= size * 4096 and not ((ptrs - lo) % size).any():
        raw = guestmem.read(lo, hi - lo)
        arr = np.frombuffer(raw, dt)
        return arr[(ptrs - lo) // size], lo, hi
    out = np.zeros(len(ptrs), dt)
    for i, p in enumerate(ptrs.tolist()):
        out[i] = np.frombuffer(guestmem.read_small(p, size), dt)[0]
    return out, lo, hi


def snapshot() -> Snapshot:
    """Every thread in the scheduler's table, by id, and the CPUs."""
    cpus = list(percpu.cpus())
    addr, n = table_location()
    w = guestmem.word()
    table = np.frombuffer(guestmem.read(addr, n * w), f"<u{w}")
    ids = np.nonzero(table)[0]
    ptrs = table[ids]
    objs, lo, hi = _objects(ptrs)
    states = debuginfo.enum_names("thread_state")
    running = {c.current: c.id for c in cpus}
    idles = {c.idle for c in cpus}
    cpu_of = {c.addr: c.id for c in cpus}
    has = set(objs.dtype.names or ())
    out = []
    for k, (index, p) in enumerate(zip(ids.tolist(), ptrs.tolist())):
        o = objs[k]
        tid = int(o["id"])
        state = states.get(int(o["state"]), f"state{int(o['state'])}")
        if tid != index:
            state = "creating"  # the id is claimed, the object not yet set up (or being reused)
        elif state == "running" and p not in running and p in idles:
            state = "runnable"  # an idle thread keeps `running` while switched out: it runs when nothing else can
        cpu = running.get(p, cpu_of.get(int(o["home"]), -1))
        out.append(Thread(
            tid=index, name=fmt.clean_text(bytes(o["name"])), addr=p, state=state, cpu=cpu, running=p in running,
            on_cpu=bool(o["on_cpu"]), pinned=bool(o["pinned"]), home=int(o["home"]),
            wait_obj=int(o["wait_obj"]) if "wait_obj" in has else 0,
            switched_tsc=int(o["switched_tsc"]) if "switched_tsc" in has else 0,
            run_tsc=int(o["run_tsc"]) if "run_tsc" in has else 0,
            switches=int(o["switches"]), due=int(o["due"]), timer_armed=bool(o["timer_armed"]),
            saved_rsp=int(o["saved_rsp"]), stack=int(o["stack"]), stack_size=int(o["stack_size"])))
    return Snapshot(out, cpus, (lo, hi))


def threads() -> Iterator[Thread]:
    yield from snapshot().threads
