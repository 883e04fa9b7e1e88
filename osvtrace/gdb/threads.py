"""`osv info threads`, `$osv_thread(ID)` and the thread pretty-printer
(kernel/core/thread.hh, thread.cc).

The walker reads the scheduler's thread table (`osvtrace_thread_table`: thread*
indexed by id), then all thread objects in one bulk read (they live in one
static array), and turns them into numpy columns through a record type built
from debug info: 1,000 threads cost two reads, not 1,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import common, percpu

TABLE_SYMBOL = "osvtrace_thread_table"  # thread.cc: a pointer to the table
TABLE_ARRAY = "threads::(anonymous namespace)::table"  # the table itself (older kernels)

# struct thread field -> column name; the optional ones are debugging aids a kernel may lack.
COLUMNS = {"id": "id", "state": "state", "on_cpu": "on_cpu", "pinned": "pinned", "name": "name", "home": "home",
           "saved_rsp": "saved_rsp", "stack": "stack", "stack_size": "stack_size",
           "nr_switches_in": "switches", "sleep_timer.due": "due", "sleep_timer.node.next": "timer_armed"}
OPTIONAL = {"wait_obj": "wait_obj", "switched_tsc": "switched_tsc", "run_tsc": "run_tsc"}
BLOCKED = ("waiting", "sleeping")


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
        raise common.OsvError(f"no thread {tid} (threads: {ids or 'none yet'}{' ...' if len(self.threads) > 20 else ''})")

    def owner_of(self, addr: int) -> Thread | None:
        """The thread object containing addr (its sleep timer, say)."""
        size = common.layout_of("thread").size
        for t in self.threads:
            if t.addr <= addr < t.addr + size:
                return t
        return None


def table_location() -> tuple[int, int]:
    """(address, entries) of the thread table."""
    ptr = common.lookup_type("thread").pointer().sizeof
    common.inferior()
    try:
        sym = common._symbol(TABLE_SYMBOL, False)
        n = int(gdb.parse_and_eval("threads_max"))
    except (common.OsvError, gdb.error):
        t = common.symbol_type(TABLE_ARRAY, static=True).strip_typedefs()
        return common.symbol_address(TABLE_ARRAY, static=True), t.sizeof // ptr
    addr = common.read_word(int(sym.value().address))
    if not addr:
        raise common.OsvError(f"{TABLE_SYMBOL} is 0: the kernel's data is not set up (stopped before boot?)")
    return addr, n


def _dtype() -> np.dtype:
    layout = common.layout_of("thread")
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
        raw = common.read(lo, hi - lo)
        arr = np.frombuffer(raw, dt)
        return arr[(ptrs - lo) // size], lo, hi
    out = np.zeros(len(ptrs), dt)
    for i, p in enumerate(ptrs.tolist()):
        out[i] = np.frombuffer(common.read_small(p, size), dt)[0]
    return out, lo, hi


def snapshot() -> Snapshot:
    """Every thread in the scheduler's table, by id, and the CPUs."""
    cpus = list(percpu.cpus())
    addr, n = table_location()
    w = common.word()
    table = np.frombuffer(common.read(addr, n * w), f"<u{w}")
    ids = np.nonzero(table)[0]
    ptrs = table[ids]
    objs, lo, hi = _objects(ptrs)
    states = common.enum_names("thread_state")
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
            tid=index, name=common.clean_text(bytes(o["name"])), addr=p, state=state, cpu=cpu, running=p in running,
            on_cpu=bool(o["on_cpu"]), pinned=bool(o["pinned"]), home=int(o["home"]),
            wait_obj=int(o["wait_obj"]) if "wait_obj" in has else 0,
            switched_tsc=int(o["switched_tsc"]) if "switched_tsc" in has else 0,
            run_tsc=int(o["run_tsc"]) if "run_tsc" in has else 0,
            switches=int(o["switches"]), due=int(o["due"]), timer_armed=bool(o["timer_armed"]),
            saved_rsp=int(o["saved_rsp"]), stack=int(o["stack"]), stack_size=int(o["stack_size"])))
    return Snapshot(out, cpus, (lo, hi))


def threads() -> Iterator[Thread]:
    yield from snapshot().threads


# ---------------------------------------------------------------- names for addresses

class Names:
    """thread* -> 'thread 5 (holder)', read lazily (for commands that name a few threads)."""

    def __init__(self, snap: Snapshot | None = None) -> None:
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
                layout = common.layout_of("thread")
                buf = common.read_small(addr, layout.size)
                got = f"{layout.get(buf, 'id')} ({layout.text(buf, 'name')})"
            except common.OsvError:
                got = f"{addr:#x} (unreadable)"
        self.cache[addr] = got
        return got

    def tid(self, addr: int) -> int:
        t = self.snap.by_addr.get(addr) if self.snap else None
        if t is not None:
            return t.tid
        layout = common.layout_of("thread")
        return layout.get(common.read_small(addr, layout.size), "id")


def names() -> Names:
    return Names()


# ---------------------------------------------------------------- what a thread waits for

def describe_waits(snap: Snapshot) -> dict[int, str]:
    """tid -> what each blocked thread waits for: `mutex NAME`, `waitqueue NAME`, `join 5`,
    `sleep until 1.234s`. The kind is checked in memory (the thread is in that mutex's or
    wait queue's list), not guessed from an address."""
    from osvtrace.gdb import mutex  # the mutex module reads mutexes and wait queues

    clk = common.clock()
    tl = common.layout_of("thread")
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
        label = common.symbolize(obj) or f"{obj:#x}"
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
        el = common.layout_of("event")
        return el.get(common.read_small(addr, el.size), "waiter_")
    except common.OsvError:
        return 0


def event_label(addr: int, label: str) -> str:
    """`net channel 0x... (udp :7)` for a net channel's event, else `event NAME`."""
    from osvtrace.gdb import net

    try:
        got = net.event_owner(addr)
    except common.OsvError:
        got = None
    return got or f"event {label}"


# ---------------------------------------------------------------- the command

def rows(snap: Snapshot) -> list[tuple]:
    clk = common.clock()
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


class InfoThreads(common.OsvCommand):
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
    Example:
      (gdb) osv info threads
    """

    def __init__(self) -> None:
        super().__init__("osv info threads", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        if arg.strip():
            raise common.OsvError("osv info threads takes no arguments")
        snap = snapshot()
        if not snap.threads:
            gdb.write("no threads yet (the kernel has not created any)\n")
            return
        gdb.write(common.table(rows(snap), HEADER))


# ---------------------------------------------------------------- $osv_thread, printer

class ThreadFunction(gdb.Function):
    """$osv_thread(ID): the kernel thread with that id, as a `thread *` (0 if none).

    Example:
      (gdb) p *$osv_thread(2)
      (gdb) p $osv_thread(2)->name
    """

    def __init__(self) -> None:
        super().__init__("osv_thread")

    def invoke(self, tid: Any) -> Any:
        try:
            addr, n = table_location()
            i = int(tid)
            p = common.read_word(addr + common.word() * i) if 0 <= i < n else 0
        except common.OsvError as e:
            raise gdb.GdbError(f"$osv_thread: {e}") from None
        return gdb.Value(p).cast(common.lookup_type("thread").pointer())


class CurrentFunction(gdb.Function):
    """$osv_current([CPU]): the thread running on CPU (default: the CPU gdb has selected).

    Example:
      (gdb) p $osv_current(1)->name
    """

    def __init__(self) -> None:
        super().__init__("osv_current")

    def invoke(self, *args: Any) -> Any:
        try:
            if args:
                c = percpu.cpu_by_id(int(args[0]))
            else:
                gs = int(gdb.parse_and_eval("$gs_base"))
                c = next((c for c in percpu.cpus() if c.addr == gs), None)
                if c is None:
                    raise common.OsvError("this vCPU's %gs does not point at a struct cpu yet")
        except common.OsvError as e:
            raise gdb.GdbError(f"$osv_current: {e}") from None
        return gdb.Value(c.current).cast(common.lookup_type("thread").pointer())


def print_thread(val: Any) -> str:
    """thread 5 (holder) waiting on mutex gdbcheck::held, cpu 1"""
    addr = common.value_address(val)
    tl = common.layout_of("thread")
    buf = common.read_static(addr, tl.size)
    states = common.enum_names("thread_state")
    tid, name = tl.get(buf, "id"), tl.text(buf, "name")
    state = states.get(tl.get(buf, "state"), f"state {tl.get(buf, 'state')}")
    if not tid:
        return f"thread (unused slot) at {addr:#x}"
    text = f"thread {tid} ({name}) {state}"
    if state in BLOCKED and common.connected():
        try:
            snap = snapshot()
            text += f": {describe_waits(snap).get(tid, '?')}"
        except common.OsvError:
            pass
    return text


def register() -> None:
    InfoThreads()
    ThreadFunction()
    CurrentFunction()
    common.PRINTERS.add("thread", print_thread)
