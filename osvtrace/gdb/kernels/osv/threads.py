"""Every OSv thread at one stop: `sched::thread_map` (std::unordered_map<unsigned,
sched::thread *>) walked through its node chain, each thread's fields and its detached
state (status, CPU), and which vCPU runs it (the vCPU whose rsp lies in its stack)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import context, debuginfo, fmt, guestmem, lists, threadtable
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import layout_of
from osvtrace.gdb.kernels.osv.cpus import cpus
from osvtrace.gdb.kernels.osv.reading import read_fields, type_name, unique_ptr_offset

THREAD_MAP = "sched::thread_map"  # OSv's registry of threads; osvtrace's kernel has none


MAX_THREADS = 100_000


THREAD_FIELDS = ["_id", "_total_cpu_time", "_state.rsp", "_state.rbp", "_state.rip",
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
    frames: list[Any] | None = None  # stacks.Frame, innermost first, once unwound
    note: str = ""


@dataclass
class Snapshot(threadtable.Snapshot):
    """Every OSv thread and CPU at one stop (by_id and by_addr as on our kernel), and what
    made the reading incomplete, if anything did."""

    problem: str = ""

    def describe(self, addr: int) -> str:
        if not addr:
            return "-"
        t = self.by_addr.get(addr)
        return f"{t.tid} ({t.name})" if t else f"{addr:#x}"


def thread_pointers() -> tuple[list[int], str]:
    """Every sched::thread* in sched::thread_map (a std::unordered_map<unsigned, thread*>),
    walked through its node chain: bounded and cycle-checked."""
    sym = debuginfo.symbol(THREAD_MAP)
    map_addr = int(sym.value().address)
    ht = sym.type.strip_typedefs().fields()[0].type.strip_typedefs()  # _M_h, the _Hashtable
    hl = debuginfo.layout_of_type(ht)
    node_t = _node_type(ht)
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


def _node_type(ht: Any) -> Any:
    """The node type of a std::_Hashtable, by its name (gdb may print the type with a
    `class ` prefix once other objfiles are loaded: the tag is used)."""
    tag = type_name(ht)
    names = [f"{tag}::__node_type"]
    try:
        pair = ht.template_argument(1)
        names += [f"std::__detail::_Hash_node<{pair}, {c}>" for c in ("false", "true")]
    except (gdb.error, RuntimeError):
        pass
    for n in names:
        try:
            return gdb.lookup_type(n)
        except gdb.error:
            continue
    raise OsvError(f"no node type of {tag} in the debug info (libstdc++ changed its unordered_map?)")


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
    detached_off = unique_ptr_offset(tl, "_detached_state")
    regs = _vcpu_registers()
    out = []
    for p in ptrs:
        try:
            f = read_fields(p, tl, THREAD_FIELDS)
            f["_detached_state"] = guestmem.read_word(p + detached_off)
            name = fmt.clean_text(guestmem.read_small(p + name_off, name_size))
        except OsvError as e:
            problem = problem or f"thread object {p:#x} unreadable ({e}): being destroyed?"
            continue
        state, cpu_addr = "?", 0
        detached = f["_detached_state"]
        if detached:
            try:
                d = read_fields(detached, dl, ["st", "_cpu"])
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
    return Snapshot(out, cl, problem=problem)
