"""Real OSv (cloudius-systems/osv) under gdb: the osv commands on OSv's own structures.

Chosen when the ELF has `sched::thread_map` (OSv's thread registry; osvtrace's kernel has
no such symbol). Every layout comes from loader.elf's DWARF through gdb's types
(debuginfo.Layout): sched::thread, sched::thread::detached_state, sched::cpu and its
runqueue (a boost::intrusive rbtree), lockfree::mutex and its queue_mpsc of wait_record,
trace_buf and trace_record, elf::object. Nothing here is an offset written by hand.

OSv keeps no "what am I waiting for" field, so what a thread waits for is read from its
stack: the thread's saved rsp/rbp/rip (thread_state, written by switch_to) are loaded into
a vCPU (as `osv thread` does) and gdb unwinds it; the `this` of a lockfree::mutex::lock
frame, or the argument of pthread_mutex_lock, names the mutex. The application is a
shared object loaded at run time: `osv syms` (and every command that shows stacks, once
per object) adds its symbols at its load base, so its frames have names.

Robust at any stop: every walk is bounded and cycle-checked; a thread being created or
destroyed, a mutex mid-hand-off or a trace record mid-write (its tracepoint word is -1,
"end of this CPU's data") gives a note and the rest is printed.
"""

from __future__ import annotations

import fnmatch
import os
import struct
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, context, debuginfo, fmt, guestmem, lists
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import Layout, layout_of

NAME = "OSv"
DETECT_SYMBOL = "sched::thread_map"
MAX_THREADS = 100_000
MAX_FRAMES = 64
MAX_WAITERS = 10_000
END_MARKER = (1 << 64) - 1  # trace_buf::invalid_trace_point: the record being written

# Frames of the scheduler and lock machinery: `where` skips them to show what the thread
# was doing (loader.py's `osv info threads` skips the same files).
MACHINERY = ("sched::", "lockfree::mutex::", "waiter::", "wait_record::", "condvar::", "mutex_lock", "mutex_unlock",
             "switch_to", "std::", "__gnu_cxx::", "osv::clock::", "waitqueue::", "thread_main_c", "memory::")


def detect() -> bool:
    try:
        return gdb.lookup_global_symbol(DETECT_SYMBOL) is not None
    except gdb.error:
        return False


# ---------------------------------------------------------------- reading

def read_fields(addr: int, layout: Layout, paths: list[str]) -> dict[str, int]:
    """Integer fields of the object at addr, read in as few pieces as the layout allows."""
    spots = sorted((layout.field(p)[0], layout.field(p)[1], p) for p in paths)
    out: dict[str, int] = {}
    i = 0
    while i < len(spots):
        lo = spots[i][0]
        j = i
        while j + 1 < len(spots) and spots[j + 1][0] + spots[j + 1][1] - lo <= 2048:
            j += 1
        hi = max(off + size for off, size, _ in spots[i:j + 1])
        buf = guestmem.read_small(addr + lo, hi - lo)
        for off, size, p in spots[i:j + 1]:
            out[p] = int.from_bytes(buf[off - lo:off - lo + min(size, 8)], "little")
        i = j + 1
    return out


def read_string(addr: int, limit: int = 256) -> str:
    if not addr:
        return ""
    try:
        raw = guestmem.read_small(addr, limit)
    except OsvError:
        try:
            raw = guestmem.read_small(addr, 16)
        except OsvError:
            return f"<unreadable {addr:#x}>"
    return fmt.clean_text(raw)


def read_vector(addr: int, vec_type: Any, limit: int) -> list[int]:
    """The pointer elements of a std::vector<T*> at addr."""
    vl = debuginfo.layout_of_type(vec_type)
    f = read_fields(addr, vl, ["_M_impl._M_start", "_M_impl._M_finish"])
    start, finish = f["_M_impl._M_start"], f["_M_impl._M_finish"]
    w = guestmem.word()
    n = (finish - start) // w
    if n < 0 or n > limit:
        raise OsvError(f"vector at {addr:#x} has {n} entries (being changed, or damaged)")
    if not n:
        return []
    raw = guestmem.read_small(start, n * w)
    return [int.from_bytes(raw[i * w:(i + 1) * w], "little") for i in range(n)]


# ---------------------------------------------------------------- CPUs

@dataclass
class Cpu:
    id: int
    addr: int
    percpu_base: int
    idle: int
    vcpu: int  # gdb thread number of its vCPU (QEMU lists vCPUs in CPU order)


def cpus() -> list[Cpu]:
    sym = debuginfo.symbol("sched::cpus")
    ptrs = read_vector(int(sym.value().address), sym.type, 4096)
    cl = layout_of("sched::cpu")
    vcpus = sorted(th.num for th in gdb.selected_inferior().threads())
    out = []
    for i, p in enumerate(ptrs):
        if not p:
            continue
        f = read_fields(p, cl, ["id", "percpu_base", "idle_thread"])
        out.append(Cpu(f["id"], p, f["percpu_base"], f["idle_thread"], vcpus[i] if i < len(vcpus) else -1))
    return out


# ---------------------------------------------------------------- threads

THREAD_FIELDS = ["_id", "_detached_state", "_total_cpu_time", "_state.rsp", "_state.rbp", "_state.rip",
                 "_attr._stack.begin", "_attr._stack.size"]


@dataclass
class Thread:
    tid: int
    addr: int
    name: str
    state: str
    cpu: int  # OSv's cpu id, -1 unknown
    cpu_addr: int
    total_ns: int
    rsp: int
    rbp: int
    rip: int
    stack: int
    stack_size: int
    vcpu: int | None = None  # the gdb thread running it, when it runs
    frames: list["Frame"] | None = None
    note: str = ""


@dataclass
class Snapshot:
    threads: list[Thread]
    cpus: list[Cpu]
    problem: str = ""
    by_addr: dict[int, Thread] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_addr = {t.addr: t for t in self.threads}

    def by_id(self, tid: int) -> Thread:
        for t in self.threads:
            if t.tid == tid:
                return t
        raise OsvError(f"no thread {tid} (threads: {', '.join(str(t.tid) for t in self.threads[:20])})")

    def describe(self, addr: int) -> str:
        if not addr:
            return "-"
        t = self.by_addr.get(addr)
        return f"{t.tid} ({t.name})" if t else f"{addr:#x}"


def thread_pointers() -> tuple[list[int], str]:
    """Every sched::thread* in sched::thread_map (a std::unordered_map<unsigned, thread*>),
    walked through its node chain: bounded and cycle-checked."""
    sym = debuginfo.symbol(DETECT_SYMBOL)
    map_addr = int(sym.value().address)
    ht = sym.type.strip_typedefs().fields()[0].type.strip_typedefs()  # _M_h, the _Hashtable
    hl = debuginfo.layout_of_type(ht)
    node_t = debuginfo.lookup_type(str(ht) + "::__node_type")
    nl = debuginfo.layout_of_type(node_t)
    storage_off, _size, storage_t = nl.field("_M_storage")
    pair_l = debuginfo.layout_of_type(storage_t.template_argument(0))
    second = storage_off + pair_l.offset("second")
    head = map_addr + sym.type.strip_typedefs().fields()[0].bitpos // 8
    f = read_fields(head, hl, ["_M_before_begin._M_nxt", "_M_element_count"])
    count = f["_M_element_count"]
    walk = lists.walk_chain(f["_M_before_begin._M_nxt"], nl.offset("_M_nxt"), limit=min(count + 64, MAX_THREADS),
                            what="sched::thread_map")
    ptrs = []
    for node in walk.items:
        try:
            ptrs.append(guestmem.read_word(node + second))
        except OsvError:
            return ptrs, f"sched::thread_map node {node:#x} unreadable"
    problem = walk.problem
    if not problem and len(ptrs) != count:
        problem = f"sched::thread_map holds {count} threads, its chain {len(ptrs)} (being changed)"
    return ptrs, problem


def _status_names() -> dict[int, str]:
    return debuginfo.enum_names("sched::thread::status")


def _vcpu_registers() -> dict[int, dict[str, int]]:
    """Each vCPU's own rsp/rip/rbp (the values `osv thread` saved, where it overwrote them)."""
    out = {}
    cur = gdb.selected_thread()
    try:
        for th in gdb.selected_inferior().threads():
            saved = context.STATE.saved.get(th.num, {})
            th.switch()
            f = gdb.newest_frame()
            regs = {}
            for r in ("rsp", "rip", "rbp"):
                regs[r] = saved[r] if r in saved else int(f.read_register(r)) & ((1 << 64) - 1)
            out[th.num] = regs
    finally:
        if cur is not None and cur.is_valid():
            cur.switch()
    return out


def snapshot() -> Snapshot:
    guestmem.inferior()
    cl = cpus()
    cpu_ids = {c.addr: c.id for c in cl}
    ptrs, problem = thread_pointers()
    tl = layout_of("sched::thread")
    dl = layout_of("sched::thread::detached_state")
    statuses = _status_names()
    name_off, name_size, _ = tl.field("_attr._name")
    regs = _vcpu_registers()
    out = []
    for p in ptrs:
        try:
            f = read_fields(p, tl, THREAD_FIELDS)
            name = fmt.clean_text(guestmem.read_small(p + name_off, name_size))
        except OsvError as e:
            problem = problem or f"thread object {p:#x} unreadable ({e}): being destroyed?"
            continue
        state, cpu_addr = "?", 0
        if f["_detached_state"]:
            try:
                d = read_fields(f["_detached_state"], dl, ["st", "_cpu"])
                state = statuses.get(d["st"], f"status {d['st']}")
                cpu_addr = d["_cpu"]
            except OsvError:
                state = "?"
        else:
            state = "gone"  # detached state freed: the thread is being destroyed
        t = Thread(tid=f["_id"], addr=p, name=name, state=state, cpu=cpu_ids.get(cpu_addr, -1), cpu_addr=cpu_addr,
                   total_ns=f["_total_cpu_time"], rsp=f["_state.rsp"], rbp=f["_state.rbp"], rip=f["_state.rip"],
                   stack=f["_attr._stack.begin"], stack_size=f["_attr._stack.size"])
        for num, r in regs.items():
            if t.stack and t.stack < r["rsp"] <= t.stack + t.stack_size:
                t.vcpu = num
        out.append(t)
    # A running thread whose vCPU is on another stack (an interrupt or exception stack):
    # the vCPU of its CPU.
    taken = {t.vcpu for t in out if t.vcpu is not None}
    for t in out:
        if t.vcpu is None and t.state == "running":
            c = next((c for c in cl if c.addr == t.cpu_addr), None)
            if c is not None and c.vcpu not in taken and c.vcpu > 0:
                t.vcpu = c.vcpu
                taken.add(c.vcpu)
    out.sort(key=lambda t: t.tid)
    return Snapshot(out, cl, problem)


# ---------------------------------------------------------------- stacks

@dataclass
class Frame:
    pc: int
    function: str
    where: str  # file:line, or the object's name
    mutex: int = 0  # a lockfree::mutex this frame is locking
    pmutex: int = 0  # the pthread_mutex_t it came from
    condvar: int = 0
    join: int = 0


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
            else:
                obj = gdb.current_progspace().objfile_for_address(pc)
                where = os.path.basename(obj.filename) if obj is not None and obj.filename else ""
                if not name:
                    info = gdb.execute(f"info symbol {pc:#x}", to_string=True).strip()
                    if not info.startswith("No symbol"):
                        name = info.split(" in section")[0]
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


def stack_of(t: Thread) -> tuple[list[Frame], str]:
    """Thread t's frames, innermost first, with a note if the unwinding stopped early."""
    cur = gdb.selected_thread()
    try:
        if t.vcpu is not None:
            context._select_vcpu(t.vcpu)
            return _walk_frames()
        if not t.rsp or not t.rip:
            return [], "no saved context (being created, or not started)"
        if t.state in ("gone", "terminated"):
            return [], f"{t.state}: its stack may be freed"
        old = context._write_registers({"rsp": t.rsp, "rbp": t.rbp, "rip": t.rip})
        try:
            return _walk_frames()
        finally:
            context._write_registers(old)
    finally:
        if cur is not None and cur.is_valid():
            cur.switch()


def with_stacks(snap: Snapshot, which: Callable[[Thread], bool] = lambda t: True) -> None:
    """Unwind the chosen threads of snap (frames and notes set on each)."""
    if context.STATE.saved:
        context.restore(quiet=True)
    load_app_symbols(quiet=True)
    for t in snap.threads:
        if which(t):
            try:
                t.frames, t.note = stack_of(t)
            except OsvError as e:
                t.frames, t.note = [], str(e)


def where(t: Thread) -> str:
    """The innermost frame that is not scheduler or lock machinery (as loader.py's location)."""
    if not t.frames:
        return "?"
    for fr in t.frames:
        if not fr.function.startswith(MACHINERY) and fr.function != "??":
            return f"{fr.function} {fr.where}".strip()
    return f"{t.frames[-1].function} {t.frames[-1].where}".strip()


def pthread_mutex_target(addr: int) -> int:
    """The lockfree::mutex behind a pthread_mutex_t (libc/pthread.cc: a lazy_indirect, the
    mutex allocated on first use; 0 if never used)."""
    return guestmem.read_word(addr)


def wait_of(t: Thread) -> tuple[str, int]:
    """(what a waiting thread waits for, the lockfree::mutex address if a mutex)."""
    if not t.frames:
        return "-", 0
    pm = next((fr.pmutex for fr in t.frames if fr.pmutex), 0)
    for fr in t.frames:
        if fr.mutex or (fr.function.startswith("lockfree::mutex::lock") and pm):
            m = fr.mutex or _safe(pthread_mutex_target, pm)
            return f"mutex {mutex_label(m, pm)}", m
        if fr.condvar:
            return f"condvar {symbol_label(fr.condvar)}", 0
        if fr.join:
            return f"join {fr.join:#x}", 0
        if fr.function.startswith(("sched::thread::sleep", "nanosleep", "usleep")):
            return "sleep", 0
    return "-", 0


def _safe(f: Callable[[int], int], a: int) -> int:
    try:
        return f(a) if a else 0
    except OsvError:
        return 0


def symbol_label(addr: int) -> str:
    """`name (0x...)` for an object in static storage, else the address."""
    try:
        info = gdb.execute(f"info symbol {addr:#x}", to_string=True).strip()
    except gdb.error:
        info = "No symbol"
    if info.startswith("No symbol"):
        return f"{addr:#x}"
    return f"{info.split(' in section')[0].replace(' + ', '+')} ({addr:#x})"


def mutex_label(m: int, pm: int = 0) -> str:
    if pm:
        return f"{symbol_label(pm)} -> {m:#x}" if m else symbol_label(pm)
    return symbol_label(m)


# ---------------------------------------------------------------- app symbols

_loaded: set[tuple[str, int]] = set()


def app_objects() -> list[tuple[str, int]]:
    """(path in the guest, load base) of every ELF object OSv has loaded (elf::program::s_objs)."""
    sym = debuginfo.symbol("elf::program::s_objs")
    ol = layout_of("elf::object")
    out = []
    for p in read_vector(int(sym.value().address), sym.type, 4096):
        try:
            f = read_fields(p, ol, ["_base", "_pathname._M_dataplus._M_p", "_pathname._M_string_length"])
            n = min(f["_pathname._M_string_length"], 4096)
            path = guestmem.read_small(f["_pathname._M_dataplus._M_p"], n).decode("utf-8", "replace") if n else ""
        except OsvError:
            continue
        out.append((path, f["_base"]))
    return out


def osv_tree() -> str:
    """The OSv source tree: loader.elf is TREE/build/MODE[.ARCH]/loader.elf."""
    prog = gdb.current_progspace().filename or ""
    d = os.path.dirname(os.path.realpath(prog))
    return os.path.dirname(os.path.dirname(d))


def host_path(guest_path: str) -> str:
    """The host file a guest path came from: the build's usr.manifest, then a search of the
    build and modules directories by name."""
    tree = osv_tree()
    build = os.path.dirname(os.path.realpath(gdb.current_progspace().filename or ""))
    for manifest in ("usr.manifest", "bootfs.manifest"):
        try:
            with open(os.path.join(build, manifest)) as fh:
                for line in fh:
                    g, sep, h = line.partition(":")
                    if sep and g.strip() == guest_path:
                        h = h.strip()
                        h = h if os.path.isabs(h) else os.path.join(build, h)
                        if os.path.isfile(h):
                            return h
        except OSError:
            pass
    name = os.path.basename(guest_path)
    for top in (build, os.path.join(tree, "modules"), os.path.join(tree, "apps")):
        for root, _dirs, files in os.walk(top):
            if name in files and os.path.isfile(os.path.join(root, name)):
                return os.path.join(root, name)
    return ""


def load_app_symbols(quiet: bool = False) -> list[str]:
    """add-symbol-file each loaded object (not the kernel) at its base, once per (path, base)."""
    lines = []
    try:
        objs = app_objects()
    except OsvError as e:
        return [f"cannot read elf::program::s_objs: {e}"]
    kernel = os.path.realpath(gdb.current_progspace().filename or "")
    have = {os.path.realpath(o.filename) for o in gdb.objfiles() if o.filename}
    for guest, base in objs:
        if not base or not guest:
            continue
        path = host_path(guest)
        if not path:
            lines.append(f"{guest} at {base:#x}: no host file found")
            continue
        if os.path.realpath(path) == kernel or (path, base) in _loaded:
            continue
        if os.path.realpath(path) in have:
            _loaded.add((path, base))
            continue
        try:
            gdb.execute(f"add-symbol-file {path} -o {base:#x}", to_string=True)
            _loaded.add((path, base))
            lines.append(f"{guest}: symbols from {path} at {base:#x}")
        except gdb.error as e:
            lines.append(f"{guest}: {commands.one_line(str(e))}")
    if not quiet:
        for ln in lines or ["no application objects to add"]:
            gdb.write(f"osv: {ln}\n")
    return lines


# ---------------------------------------------------------------- mutexes

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


def describe_mutex(m: Mutex, snap: Snapshot, label: str) -> list[str]:
    owner = snap.describe(m.owner) if m.owner else "none"
    waiting = ", ".join(snap.describe(w) if w else "(woken)" for w in m.waiters) or "none"
    lines = [f"mutex {label}: owner {owner}, depth {m.depth}, count {m.count}, waiters [{waiting}]"]
    if m.handoff:
        lines.append(f"  hand-off in progress (token {m.handoff}): the lock is being passed to a waiter")
    elif m.count > 0 and not m.owner:
        lines.append("  count > 0 and no owner: between lock's increment and its owner store, or a hand-off")
    if m.problem:
        lines.append(f"  note: {m.problem}")
    return lines


def mutex_arg(arg: str) -> tuple[int, int]:
    """(lockfree::mutex address, pthread_mutex_t address or 0) from a command argument: a
    pthread_mutex_t (the app's; libc/pthread.cc keeps a pointer to the real mutex in it), a
    lockfree::mutex, a pointer to either, or an address (taken as a lockfree::mutex)."""
    addr, _t = guestmem.address_arg(arg, "a mutex")
    v = gdb.parse_and_eval(arg)
    t = v.type.target() if v.type.strip_typedefs().code == gdb.TYPE_CODE_PTR else v.type
    names = {str(t), str(t.strip_typedefs())}
    if any("pthread_mutex_t" in n for n in names):
        return pthread_mutex_target(addr), addr
    if t.strip_typedefs().code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_ENUM) or names & {"lockfree::mutex", "mutex_t",
                                                                                      "mutex"}:
        return addr, 0
    raise OsvError(f"{arg!r} is a {t}, not a lockfree::mutex or a pthread_mutex_t")


# ---------------------------------------------------------------- commands

def info_threads(arg: str, from_tty: bool) -> None:
    argv = gdb.string_to_argv(arg)
    bad = [a for a in argv if a not in ("--stacks", "--no-where")]
    if bad:
        raise OsvError("usage: osv info threads [--stacks] [--no-where]")
    snap = snapshot()
    if not snap.threads:
        gdb.write("no threads yet\n")
        return
    if "--no-where" not in argv:
        with_stacks(snap)
    rows = []
    for t in snap.threads:
        wait, _m = wait_of(t) if t.frames is not None else ("-", 0)
        cpu = f"{t.cpu}" if t.cpu >= 0 else "-"
        row = (t.tid, t.name, cpu, t.state + ("*" if t.vcpu is not None else ""), fmt.format_seconds(t.total_ns / 1e9),
               f"{t.addr:#x}", wait)
        if t.frames is not None:
            row += (where(t) + (f" [{t.note}]" if t.note and not t.frames else ""),)
        rows.append(row)
    header = ("id", "name", "cpu", "state", "cpu-time", "thread", "wait")
    if "--no-where" not in argv:
        header += ("where",)
    gdb.write(fmt.table(rows, header))
    gdb.write(f"{len(snap.threads)} threads; * = on a vCPU now\n")
    if snap.problem:
        gdb.write(f"osv: note: {snap.problem}\n")
    if "--stacks" in argv:
        for t in snap.threads:
            gdb.write(f"\nthread {t.tid} ({t.name}) {t.state}:\n")
            for i, fr in enumerate(t.frames or []):
                gdb.write(f"  #{i:<2} {fr.pc:#018x} {fr.function} {fr.where}\n")
            if t.note:
                gdb.write(f"  ({t.note})\n")


def thread_cmd(arg: str, from_tty: bool) -> None:
    argv = gdb.string_to_argv(arg)
    if not argv:
        tid = context.STATE.tid
        gdb.write("osv: no OSv thread selected\n" if tid is None else f"osv: thread {tid} is selected\n")
        return
    if len(argv) != 1 or not argv[0].isdigit():
        raise OsvError("usage: osv thread ID | osv thread restore | osv thread apply all|ID... CMD")
    snap = snapshot()
    t = snap.by_id(int(argv[0]))
    if context.STATE.saved or context.STATE.home_vcpu is not None:
        context.restore(quiet=True)
    load_app_symbols(quiet=True)
    gdb.write(f"osv: {show(t)}\n")
    try:
        gdb.write(gdb.execute("frame", to_string=True))
    except gdb.error as e:
        gdb.write(f"(no frame: {e})\n")


def show(t: Thread) -> str:
    """Make gdb's selected frame thread t's (its vCPU, or its saved context loaded)."""
    cur = gdb.selected_thread()
    home = context.STATE.home_vcpu if context.STATE.home_vcpu is not None else cur.num
    if t.vcpu is not None:
        context._select_vcpu(t.vcpu)
        context.STATE.home_vcpu, context.STATE.tid = home, t.tid
        return f"thread {t.tid} ({t.name}) is on vCPU {t.vcpu}: selected it"
    if not t.rsp or not t.rip:
        raise OsvError(f"thread {t.tid} ({t.name}) has no saved context yet ({t.state})")
    context.STATE.home_vcpu = home
    context._write_registers({"rsp": t.rsp, "rbp": t.rbp, "rip": t.rip},
                             context.STATE.saved.setdefault(cur.num, {}))
    context.STATE.tid = t.tid
    return (f"thread {t.tid} ({t.name}) {t.state}: its saved rsp/rbp/rip are loaded into vCPU {cur.num}; "
            "`osv thread restore` puts the vCPU back (so does continue/step)")


def thread_restore(arg: str, from_tty: bool) -> None:
    quiet = arg.strip() in ("-q", "--quiet")
    if not context.restore(quiet=quiet) and not quiet:
        gdb.write("osv: nothing to restore\n")


def thread_apply(arg: str, from_tty: bool) -> None:
    words = arg.split()
    ids: list[int] = []
    i = 1 if words[:1] == ["all"] else 0
    if not i:
        while i < len(words) and words[i].isdigit():
            ids.append(int(words[i]))
            i += 1
    if (not ids and words[:1] != ["all"]) or i >= len(words):
        raise OsvError("usage: osv thread apply all|ID... CMD")
    cmd = arg.split(None, i)[i]
    snap = snapshot()
    targets = [snap.by_id(x) for x in ids] if ids else snap.threads
    if context.STATE.saved:
        context.restore(quiet=True)
    load_app_symbols(quiet=True)
    try:
        for t in targets:
            gdb.write(f"\nthread {t.tid} ({t.name}) {t.state}:\n")
            try:
                show(t)
                gdb.write(gdb.execute(cmd, to_string=True) or "")
            except (gdb.error, OsvError) as e:
                gdb.write(f"osv: {commands.one_line(str(e))}\n")
            finally:
                context.restore(quiet=True)
    finally:
        context.restore(quiet=True)


def rbtree_inorder(root: int, node_layout: Layout, limit: int) -> lists.Walk:
    left, right = node_layout.offset("left_"), node_layout.offset("right_")
    out: list[int] = []
    seen: set[int] = set()
    stack: list[int] = []
    node = root
    while stack or node:
        while node:
            if node in seen:
                return lists.Walk(out, f"run queue loops back to {node:#x} (being changed)")
            if len(seen) >= limit:
                return lists.Walk(out, f"run queue longer than {limit} (being changed, or damaged)")
            seen.add(node)
            stack.append(node)
            try:
                node = guestmem.read_word(node + left)
            except OsvError:
                return lists.Walk(out, f"run queue node {node:#x} unreadable")
        node = stack.pop()
        out.append(node)
        try:
            node = guestmem.read_word(node + right)
        except OsvError:
            return lists.Walk(out, f"run queue node {node:#x} unreadable")
    return lists.Walk(out)


def _header(v: Any) -> Any:
    """The rbtree header node of a boost::intrusive set value (versions nest it differently)."""
    path = []
    t = v.type.strip_typedefs()
    for _ in range(12):
        names = {f.name for f in Layout.all_fields(t)}
        if "parent_" in names:
            return v
        for step in ("holder", "tree_", "data_", "node_plus_pred_", "header_plus_size_", "header_", "root"):
            if step in names:
                v = v[step]
                path.append(step)
                t = v.type.strip_typedefs()
                break
        else:
            break
    raise OsvError(f"cannot find the rbtree header in {v.type} (boost::intrusive layout unknown; went {path})")


def run_queue(c: Cpu) -> lists.Walk:
    rq = gdb.parse_and_eval(f"((sched::cpu *){c.addr:#x})->runqueue")
    hdr = _header(rq)
    nl = debuginfo.layout_of_type(hdr.type)
    root = guestmem.read_word(int(hdr.address) + nl.offset("parent_"))
    link = layout_of("sched::thread").offset("_runqueue_link")
    w = rbtree_inorder(root, nl, 100_000)
    return lists.Walk([n - link for n in w.items], w.problem)


def runqueue_cmd(arg: str, from_tty: bool) -> None:
    want = commands.parse_cpu(arg, "osv runqueue [CPU]")
    snap = snapshot()
    for c in snap.cpus:
        if want is not None and c.id != want:
            continue
        running = [t for t in snap.threads if t.cpu == c.id and t.state == "running"]
        run = ", ".join(snap.describe(t.addr) for t in running) or "-"
        gdb.write(f"cpu {c.id}: running {run}; idle thread {snap.describe(c.idle)}\n")
        try:
            w = run_queue(c)
        except (OsvError, gdb.error) as e:
            gdb.write(f"  run queue: cannot read ({commands.one_line(str(e))})\n")
            continue
        gdb.write(f"  run queue ({len(w.items)}): {', '.join(snap.describe(a) for a in w.items) or 'empty'}\n")
        if w.problem:
            gdb.write(f"  note: {w.problem}\n")


def mutex_cmd(arg: str, from_tty: bool) -> None:
    arg = arg.strip()
    snap = snapshot()
    if arg and arg != "all":
        m, pm = mutex_arg(arg)
        if not m:
            gdb.write(f"mutex {symbol_label(pm)}: never locked (its lockfree::mutex is not allocated yet)\n")
            return
        for ln in describe_mutex(read_mutex(m), snap, mutex_label(m, pm)):
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
    for m, label in found.items():
        try:
            lines = describe_mutex(read_mutex(m), snap, label)
        except OsvError as e:
            lines = [f"mutex {label}: {e}"]
        for ln in lines:
            gdb.write(ln + "\n")
    if snap.problem:
        gdb.write(f"osv: note: {snap.problem}\n")


def percpu_cmd(arg: str, from_tty: bool) -> None:
    want = commands.parse_cpu(arg, "osv percpu [CPU]")
    for c in cpus():
        if want is not None and c.id != want:
            continue
        gdb.write(f"cpu {c.id} at {c.addr:#x} (vCPU {c.vcpu}, percpu_base {c.percpu_base:#x}):\n")
        try:
            gdb.write(gdb.execute(f"print *(sched::cpu *){c.addr:#x}", to_string=True))
        except gdb.error as e:
            gdb.write(f"  cannot print: {commands.one_line(str(e))}\n")


def _int_var(name: str) -> int:
    """An integer variable (plain or std::atomic) read at its own size."""
    try:
        v = gdb.parse_and_eval(name)
    except gdb.error as e:
        raise OsvError(f"no {name} in the debug info: {commands.one_line(str(e))}") from None
    if v.address is None:
        return int(v)
    return int.from_bytes(guestmem.read_small(int(v.address), min(v.type.sizeof, 8)), "little")


def _has_symbol(name: str) -> bool:
    try:
        gdb.parse_and_eval(f"&{name}")
        return True
    except gdb.error:
        return False


def memory_cmd(arg: str, from_tty: bool) -> None:
    if arg.strip():
        raise OsvError("osv memory takes no arguments")
    total = _int_var("memory::phys_mem_size")
    free = _int_var("memory::free_memory")
    mib = 1024 * 1024
    gdb.write(f"physical memory {total / mib:.1f} MiB, free {free / mib:.1f} MiB ({100 * free / total:.1f}%), "
              f"in use {(total - free) / mib:.1f} MiB\n")


# ---------------------------------------------------------------- trace buffers

SIG_CHARS = {"c": "c", "b": "b", "B": "B", "h": "h", "H": "H", "i": "i", "I": "I", "q": "q", "Q": "Q", "?": "?",
             "f": "f", "d": "d", "P": "Q"}


@dataclass
class Tracepoint:
    name: str
    sig: str
    fmt: str


@dataclass
class Record:
    time: int
    cpu: int
    thread: int
    thread_name: str
    tp: Tracepoint
    args: tuple


@dataclass
class CpuTrace:
    cpu: int
    base: int
    size: int
    last: int  # bytes ever reserved (trace_buf::_last)
    records: list[Record]
    problem: str = ""


_tracepoints: dict[int, Tracepoint] = {}


def tracepoint(key: int) -> Tracepoint:
    got = _tracepoints.get(key)
    if got is None:
        tl = layout_of("tracepoint_base")
        f = read_fields(key, tl, ["name", "sig", "format"])
        got = _tracepoints[key] = Tracepoint(read_string(f["name"], 64), read_string(f["sig"], 64),
                                             read_string(f["format"], 128))
    return got


debuginfo.on_invalidate(_tracepoints.clear)


def memsave(addr: int, size: int) -> bytes:
    """Guest-virtual bytes in one piece through QEMU's `memsave` (OSv's memory is not
    identity-mapped, so pmemsave's physical addresses do not apply)."""
    if size < guestmem.PMEMSAVE_MIN:
        return guestmem.read_small(addr, size)
    fd, path = tempfile.mkstemp(prefix="osv-mem-", suffix=".bin")
    os.close(fd)
    try:
        try:
            gdb.execute(f'monitor memsave {addr:#x} {size} "{path}"', to_string=True)
        except gdb.error:
            return guestmem.read_small(addr, size)
        with open(path, "rb") as fh:
            data = fh.read()
        if len(data) != size:
            raise OsvError(f"memsave of {size} bytes at {addr:#x} returned {len(data)}")
        return data
    finally:
        os.unlink(path)


def _payload(sig: str, buf: bytes, off: int) -> tuple[tuple, int]:
    """Unpack a tracepoint's arguments (OSv's serializer: each argument at its natural
    alignment; 'p' a 50-byte pascal string, '*' a u16-length blob)."""
    vals: list[Any] = []
    for ch in sig:
        if ch == "p":
            n = buf[off]
            vals.append(buf[off + 1:off + 1 + min(n, 49)].decode("utf-8", "replace"))
            off += 50
        elif ch == "*":
            off = (off + 1) & ~1
            (n,) = struct.unpack_from("<H", buf, off)
            vals.append(f"<{n} bytes>")
            off += 2 + n
        else:
            code = SIG_CHARS.get(ch)
            if code is None:
                raise ValueError(f"signature character {ch!r}")
            size = struct.calcsize(code)
            off = (off + size - 1) & ~(size - 1)
            vals.append(struct.unpack_from("<" + code, buf, off)[0])
            off += size
    return tuple(vals), off


def read_cpu_trace(c: Cpu) -> CpuTrace:
    off = int(gdb.parse_and_eval("&percpu_trace_buffer._var").cast(gdb.lookup_type("unsigned long")))
    bl = layout_of("trace_buf")
    addr = c.percpu_base + off
    f = read_fields(addr, bl, ["_base", "_last", "_size"])
    base, last, size = f["_base"], f["_last"], f["_size"]
    if not base or not size:
        return CpuTrace(c.id, base, size, last, [], "no trace buffer (no --trace option?)")
    raw = memsave(base, size)
    rl = layout_of("trace_record")
    hdr = rl.size
    o_tp, o_th, o_name, o_time, o_cpu = (rl.offset(x) for x in ("tp", "thread", "thread_name", "time", "cpu"))
    name_size = rl.field("thread_name")[1]
    bt_field = next((f for f in rl.type.fields() if f.name == "backtrace"), None)
    if bt_field is None:
        raise OsvError("trace_record has no backtrace bit in the debug info (another OSv version?)")
    flags_off, flags_bit = bt_field.bitpos // 8, bt_field.bitpos % 8
    try:
        bt_len = int(gdb.parse_and_eval("tracepoint_base::backtrace_len"))
    except gdb.error:
        bt_len = 10
    page = _int_var("trace_page_size") if _has_symbol("trace_page_size") else 4096
    # Oldest first: after a wrap, the pages after the one being written, then up to the
    # write position (the rest of the page being written holds the previous lap's records).
    cut = last % size
    pivot = min((cut + page - 1) & ~(page - 1), size)
    order = raw[pivot:] + raw[:cut] if last >= size else raw[:last]
    out: list[Record] = []
    problem = ""
    pos, n = 0, len(order)
    while pos + 8 <= n:
        (key,) = struct.unpack_from("<Q", order, pos)
        if key == 0:  # padding up to the end of a page
            pos = (pos + page) & ~(page - 1)
            continue
        if key == END_MARKER:
            problem = "a record is being written (end marker): the CPU's data ends there"
            break
        if pos + hdr > n:
            break
        try:
            tp = tracepoint(key)
            flags = order[pos + flags_off] >> flags_bit
            p = pos + hdr + (8 * bt_len if flags & 1 else 0)
            args, end = _payload(tp.sig, order, p)
        except (OsvError, ValueError, struct.error, IndexError) as e:
            problem = f"record at offset {pos} unreadable ({e}): stopped there"
            break
        thread = int.from_bytes(order[pos + o_th:pos + o_th + 8], "little")
        tname = fmt.clean_text(order[pos + o_name:pos + o_name + name_size])
        t = int.from_bytes(order[pos + o_time:pos + o_time + 8], "little")
        cpu = int.from_bytes(order[pos + o_cpu:pos + o_cpu + 4], "little")
        out.append(Record(t, cpu, thread, tname, tp, args))
        pos = (end + 7) & ~7
    return CpuTrace(c.id, base, size, last, out, problem)


def _trace_args(arg: str) -> tuple[int, list[str], int | None]:
    argv = gdb.string_to_argv(arg)
    n, globs, cpu = 20, [], None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--tp" and i + 1 < len(argv):
            globs += argv[i + 1].split(",")
            i += 2
        elif a == "--cpu" and i + 1 < len(argv) and argv[i + 1].isdigit():
            cpu = int(argv[i + 1])
            i += 2
        elif a.isdigit():
            n = int(a)
            i += 1
        else:
            raise OsvError("usage: osv trace [N] [--tp GLOB[,GLOB]] [--cpu N] | osv trace status")
    return n, globs, cpu


def format_record(r: Record, t0: int) -> str:
    args = ", ".join(f"{a:#x}" if isinstance(a, int) and a > 0xffff else str(a) for a in r.args)
    return f"{(r.time - t0) / 1e9:12.6f}  cpu {r.cpu}  {r.thread_name or hex(r.thread):<15}  {r.tp.name}({args})"


def trace_cmd(arg: str, from_tty: bool) -> None:
    n, globs, want = _trace_args(arg)
    recs: list[Record] = []
    notes = []
    for c in cpus():
        if want is not None and c.id != want:
            continue
        ct = read_cpu_trace(c)
        recs += [r for r in ct.records if not globs or any(fnmatch.fnmatchcase(r.tp.name, g) for g in globs)]
        if ct.problem:
            notes.append(f"cpu {c.id}: {ct.problem}")
    recs.sort(key=lambda r: r.time)
    recs = recs[-n:] if n else []
    t0 = recs[0].time if recs else 0
    gdb.write(f"{len(recs)} newest records (times in s from the first shown, {t0} ns since boot)\n")
    for r in recs:
        gdb.write(format_record(r, t0) + "\n")
    for note in notes:
        gdb.write(f"osv: note: {note}\n")


def trace_status(arg: str, from_tty: bool) -> None:
    rows = []
    counts: dict[str, int] = {}
    notes = []
    for c in cpus():
        ct = read_cpu_trace(c)
        wrapped = ct.last > ct.size
        first = ct.records[0].time / 1e9 if ct.records else 0.0
        rows.append((c.id, f"{ct.size // 1024} KiB", ct.last, "yes" if wrapped else "no", len(ct.records),
                     f"{first:.6f}s" if ct.records else "-"))
        for r in ct.records:
            counts[r.tp.name] = counts.get(r.tp.name, 0) + 1
        if ct.problem:
            notes.append(f"cpu {c.id}: {ct.problem}")
    gdb.write(fmt.table(rows, ("cpu", "size", "written", "wrapped", "records", "data-starts")))
    gdb.write("(OSv's rings overwrite silently: a wrapped CPU has lost everything before data-starts)\n")
    if counts:
        gdb.write(fmt.table(sorted(counts.items(), key=lambda kv: -kv[1]), ("tracepoint", "records")))
    for note in notes:
        gdb.write(f"osv: note: {note}\n")


def syms_cmd(arg: str, from_tty: bool) -> None:
    load_app_symbols(quiet=False)


def timed(f: Callable[[str, bool], None]) -> Callable[[str, bool], None]:
    """With $OSVTRACE_GDB_TIMES set, each command prints how long it took."""
    def run(arg: str, from_tty: bool) -> None:
        t0 = time.perf_counter()
        try:
            f(arg, from_tty)
        finally:
            if os.environ.get("OSVTRACE_GDB_TIMES"):
                gdb.write(f"osv: took {time.perf_counter() - t0:.3f}s\n")
    return run


COMMANDS = {
    "osv info threads": info_threads,
    "osv thread": thread_cmd,
    "osv thread apply": thread_apply,
    "osv thread restore": thread_restore,
    "osv runqueue": runqueue_cmd,
    "osv percpu": percpu_cmd,
    "osv mutex": mutex_cmd,
    "osv memory": memory_cmd,
    "osv trace": trace_cmd,
    "osv trace status": trace_status,
    "osv syms": syms_cmd,
}

KERNEL = commands.Kernel(NAME, detect, {k: timed(v) for k, v in COMMANDS.items()})


class Syms(commands.OsvCommand):
    """Load the symbols of the objects OSv has loaded (the application) at their bases.

    OSv only: reads elf::program::s_objs, finds each object's host file (the build's
    usr.manifest, then the build and modules directories) and runs add-symbol-file with
    the object's load base. Commands that show stacks do it by themselves.
    Usage: osv syms
    """

    def __init__(self) -> None:
        super().__init__("osv syms", gdb.COMMAND_FILES)

    def run(self, arg: str, from_tty: bool) -> None:
        raise OsvError("osv syms is for OSv (loader.elf); osvtrace's kernel links its apps in")


def register() -> None:
    commands.add_kernel(KERNEL)
    Syms()

