"""`osv percpu [CPU]`: the per-CPU structures (kernel/core/percpu.hh, struct cpu).

`cpus()` is the walker every other module uses: it reads `ncpus` and `cpus[]` and
each `struct cpu` in one piece. The command prints every field the debug info
describes, so a field added to struct cpu shows up without a change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo, guestmem, thread


@dataclass
class Cpu:
    id: int
    addr: int
    current: int  # thread* running there (during a switch: the incoming one)
    idle: int  # its idle thread
    buf: bytes  # the whole struct cpu, as read

    def get(self, path: str) -> int:
        return debuginfo.layout_of("cpu").get(self.buf, path)


def ncpus() -> tuple[int, int]:
    """(CPUs online, capacity of cpus[])."""
    ptr = debuginfo.lookup_type("cpu").pointer().sizeof
    # ncpus may be a plain or an atomic integer: read it at its own size.
    n = int.from_bytes(guestmem.read_small(debuginfo.symbol_address("ncpus"), debuginfo.symbol_type("ncpus").sizeof),
                       "little")
    return n, debuginfo.symbol_type("cpus").sizeof // ptr


def cpus() -> Iterator[Cpu]:
    """Each online CPU, by index in cpus[]. Before the boot CPU installs itself there are
    none (nothing is yielded)."""
    layout = debuginfo.layout_of("cpu")
    ptr = debuginfo.lookup_type("cpu").pointer().sizeof
    n, cap = ncpus()
    if n == 0:
        return
    if n > cap:
        raise commands.OsvError(f"ncpus is {n}, more than the {cap} entries of cpus[]: memory looks damaged")
    arr = guestmem.read_small(debuginfo.symbol_address("cpus"), ptr * n)
    for i in range(n):
        addr = int.from_bytes(arr[i * ptr:(i + 1) * ptr], "little")
        if not addr:
            continue  # published in ncpus before cpus[i] was written: not ours to show yet
        buf = guestmem.read_small(addr, layout.size)
        yield Cpu(layout.get(buf, "id"), addr, layout.get(buf, "current"), layout.get(buf, "idle"), buf)


def cpu_by_id(cpu: int) -> Cpu:
    all_ = list(cpus())
    for c in all_:
        if c.id == cpu:
            return c
    raise commands.OsvError(f"no CPU {cpu} (online: {', '.join(str(c.id) for c in all_) or 'none yet'})")


def require_cpus() -> list[Cpu]:
    all_ = list(cpus())
    if not all_:
        raise commands.OsvError("no CPU is set up yet (the kernel is still booting: ncpus is 0)")
    return all_


def vcpu_of(cpu_addr: int) -> Any:
    """The gdb thread (QEMU vCPU) whose %gs base is this struct cpu, or None."""
    for th in gdb.selected_inferior().threads():
        try:
            if _gs_base(th) == cpu_addr:
                return th
        except gdb.error:
            continue
    return None


def _gs_base(th: Any) -> int:
    """%gs base of a vCPU (percpu.hh: it points at that CPU's struct cpu)."""
    cur = gdb.selected_thread()
    try:
        th.switch()
        return int(gdb.parse_and_eval("$gs_base")) & ((1 << 64) - 1)
    finally:
        if cur is not None and cur.is_valid():
            cur.switch()


# ---------------------------------------------------------------- the command

def _fmt_field(c: Cpu, name: str, t: Any, describe_thread: Callable[[int], str]) -> str | None:
    """A field's value as text, or None for fields shown elsewhere (arch state)."""
    layout = debuginfo.layout_of("cpu")
    t = t.strip_typedefs()
    off, size, _ = layout.field(name)
    raw = c.buf[off:off + size]
    if t.code == gdb.TYPE_CODE_PTR:
        v = int.from_bytes(raw, "little")
        target = t.target().strip_typedefs()
        if target.name == "thread":
            return describe_thread(v)
        if target.name == "cpu":
            return f"cpu at {v:#x}" if v else "0"
        return f"{v:#x}"
    if t.code == gdb.TYPE_CODE_BOOL:
        return "yes" if raw[0] else "no"
    if t.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_ENUM, gdb.TYPE_CODE_CHAR):
        return str(int.from_bytes(raw, "little", signed=t.is_signed if hasattr(t, "is_signed") else False))
    if t.code == gdb.TYPE_CODE_STRUCT:
        tn = t.name or ""
        if tn.startswith("std::atomic<"):
            inner = t.template_argument(0).strip_typedefs()
            v = int.from_bytes(raw, "little")
            if inner.code == gdb.TYPE_CODE_BOOL:
                return "yes" if v else "no"
            if inner.code == gdb.TYPE_CODE_PTR:
                return f"{v:#x}"
            return str(v)
        if tn.startswith("intrusive_list<"):
            n = debuginfo.layout_of_type(t).get(raw, "size_")
            return f"{n} entries"
        if tn.startswith("lockfree::mpsc_queue<"):
            ql = debuginfo.layout_of_type(t)
            busy = ql.get(raw, "pushed_") or ql.get(raw, "popq_")
            return "non-empty" if busy else "empty"
        return None  # e.g. arch::arch_cpu (GDT, TSS): not interesting here
    return None


class Percpu(commands.OsvCommand):
    """Show each CPU's struct cpu (every field the debug info describes).

    Running and idle thread, run queue and timer counts, switches, preemption state,
    load figures, trace ring ...

    Usage: osv percpu [CPU]
    Example:
      (gdb) osv percpu 1
    """

    def __init__(self) -> None:
        super().__init__("osv percpu", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        want = commands.parse_cpu(arg, "osv percpu [CPU]")
        sel = [cpu_by_id(want)] if want is not None else require_cpus()
        names = thread.names()
        layout = debuginfo.layout_of("cpu")
        fields = [f for f in layout.type.fields() if f.name and not f.is_base_class and hasattr(f, "bitpos")]
        out = []
        for c in sel:
            out.append(f"cpu {c.id} at {c.addr:#x}")
            for f in fields:
                if f.name == "self":
                    continue
                v = _fmt_field(c, f.name, f.type, names.describe)
                if v is not None:
                    out.append(f"  {f.name:<18} {v}")
        gdb.write("\n".join(out) + "\n")


def register() -> None:
    Percpu()
