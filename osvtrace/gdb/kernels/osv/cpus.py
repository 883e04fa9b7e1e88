"""OSv's CPUs: `sched::cpus` (a std::vector<sched::cpu *>) and each CPU's vCPU in gdb."""

from __future__ import annotations

from dataclasses import dataclass

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import debuginfo
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import layout_of
from osvtrace.gdb.kernels.osv.reading import read_fields, read_vector


@dataclass
class Cpu:
    id: int
    addr: int
    percpu_base: int
    idle: int
    vcpu: int  # gdb thread number of its vCPU (QEMU lists vCPUs in CPU order)


def cpus() -> list[Cpu]:
    sym = debuginfo.symbol("sched::cpus")
    try:
        ptrs = read_vector(int(sym.value().address), sym.type, 4096)
    except OsvError as e:
        raise OsvError(f"{e}: OSv's data is not mapped yet (stopped in the BIOS or the boot loader?)") from None
    cl = layout_of("sched::cpu")
    vcpus = sorted(th.num for th in gdb.selected_inferior().threads())
    out = []
    for i, p in enumerate(ptrs):
        if not p:
            continue
        f = read_fields(p, cl, ["id", "percpu_base", "idle_thread"])
        out.append(Cpu(f["id"], p, f["percpu_base"], f["idle_thread"], vcpus[i] if i < len(vcpus) else -1))
    return out
