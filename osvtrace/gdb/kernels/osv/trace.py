"""OSv's per-CPU trace buffers (`percpu_trace_buffer`, a trace_buf each): variable-size
trace_records in 4 KiB pages, a ring that overwrites silently. Each buffer is read in one
piece (memsave); a record whose tracepoint word is -1 is being written and ends that
CPU's data. `osv trace [N]`, `osv trace status`, and `osv trace snapshot DIR` (what
`osvtrace record --kernel osv` runs: every CPU's whole buffer memsaved straight into a file,
one read each, and the tracepoint dictionary beside them; no record is parsed in gdb)."""

from __future__ import annotations

import fnmatch
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import debuginfo, fmt, guestmem, stacks, stacktext
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import layout_of
from osvtrace.gdb.kernels.osv.cpus import Cpu, cpus
from osvtrace.gdb.kernels.osv.reading import has_symbol, int_var, memsave, read_fields, read_string, unique_ptr_offset
from osvtrace.gdb.kernels.osv.ring import RecordLayout, oldest_first, walk
from osvtrace.gdb.kernels.osv.syms import load_app_symbols


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
    backtrace: tuple[int, ...] = ()  # return addresses, innermost first (--trace-backtrace)


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
    """The tracepoint_base at `key` (a record's tracepoint word): name, signature, format."""
    got = _tracepoints.get(key)
    if got is None:
        try:
            f = read_fields(key, layout_of("tracepoint_base"), ["name", "sig", "format"])
        except OsvError as e:
            raise ValueError(f"tracepoint {key:#x} unreadable: {e}") from None
        got = _tracepoints[key] = Tracepoint(read_string(f["name"], 64), read_string(f["sig"], 64),
                                             read_string(f["format"], 128))
    return got


debuginfo.on_invalidate(_tracepoints.clear)


def record_layout() -> RecordLayout:
    rl = layout_of("trace_record")
    bit = next((f for f in rl.type.fields() if f.name == "backtrace"), None)
    if bit is None:
        raise OsvError("trace_record has no `backtrace` bit in the debug info (another OSv version?)")
    try:
        bt_len = int(gdb.parse_and_eval("tracepoint_base::backtrace_len"))
    except gdb.error:
        bt_len = 10
    page = int_var("trace_page_size") if has_symbol("trace_page_size") else 4096
    return RecordLayout(size=rl.size, tp=rl.offset("tp"), thread=rl.offset("thread"), name=rl.offset("thread_name"),
                        name_size=rl.field("thread_name")[1], time=rl.offset("time"), cpu=rl.offset("cpu"),
                        flags=bit.bitpos // 8, flags_bit=bit.bitpos % 8, backtrace_len=bt_len, page=page)


def read_cpu_trace(c: Cpu) -> CpuTrace:
    """One CPU's buffer, read in one piece, its records oldest first."""
    off = int(gdb.parse_and_eval("&percpu_trace_buffer._var").cast(gdb.lookup_type("unsigned long")))
    bl = layout_of("trace_buf")
    f = read_fields(c.percpu_base + off, bl, ["_last", "_size"])
    last, size = f["_last"], f["_size"]
    base = guestmem.read_word(c.percpu_base + off + unique_ptr_offset(bl, "_base"))
    if not base or not size:
        return CpuTrace(c.id, base, size, last, [], "no trace buffer (OSv started without --trace?)")
    if size & (size - 1) or size > 1 << 30:
        return CpuTrace(c.id, base, size, last, [], f"trace buffer size {size} is not a power of two (damaged?)")
    lay = record_layout()
    raws, problem = walk(oldest_first(memsave(base, size), last, lay.page), lay, lambda k: tracepoint(k).sig)
    recs = [Record(r.time, r.cpu, r.thread, r.thread_name, tracepoint(r.key), r.args, r.backtrace) for r in raws]
    return CpuTrace(c.id, base, size, last, recs, problem)


def _trace_args(arg: str) -> tuple[int, list[str], int | None, bool]:
    argv = gdb.string_to_argv(arg)
    n, globs, cpu, show_stacks = 20, [], None, False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-s", "--stacks"):
            show_stacks = True
            i += 1
        elif a == "--tp" and i + 1 < len(argv):
            globs += argv[i + 1].split(",")
            i += 2
        elif a == "--cpu" and i + 1 < len(argv) and argv[i + 1].isdigit():
            cpu = int(argv[i + 1])
            i += 2
        elif a.isdigit():
            n = int(a)
            i += 1
        else:
            raise OsvError("usage: osv trace [N] [--tp GLOB[,GLOB]] [--cpu N] [-s|--stacks] | osv trace status")
    return n, globs, cpu, show_stacks


def format_record(r: Record, t0: int) -> str:
    args = ", ".join(f"{a:#x}" if isinstance(a, int) and a > 0xffff else
                     f"<{len(a)} bytes>" if isinstance(a, bytes) else str(a) for a in r.args)
    return f"{(r.time - t0) / 1e9:12.6f}  cpu {r.cpu}  {r.thread_name or hex(r.thread):<15}  {r.tp.name}({args})"


def stack_lines(r: Record, bound: int) -> list[str]:
    """A record's backtrace named by gdb, under the record. OSv does not say why a walk
    ended: as deep as its bound (tracepoint_base::backtrace_len) it may be cut."""
    end, detail = stacktext.unmarked_end(list(r.backtrace), bound)
    return stacktext.stack_lines(stacks.sites(list(r.backtrace)), end, bound, detail)


def trace_cmd(arg: str, from_tty: bool) -> None:
    n, globs, want, show_stacks = _trace_args(arg)
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
    if show_stacks and any(r.backtrace for r in recs):
        load_app_symbols(quiet=True)  # the app's frames named at its load base
    bound = record_layout().backtrace_len if show_stacks else 0
    for r in recs:
        gdb.write(format_record(r, t0) + "\n")
        if show_stacks and r.backtrace:
            gdb.write("\n".join(stack_lines(r, bound)) + "\n")
    held = sum(1 for r in recs if r.backtrace)
    if held and not show_stacks:
        gdb.write(f"({held} of these records carry a backtrace: osv trace --stacks shows them)\n")
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


SNAPSHOT_META = "snapshot.json"


def _word(addr: int) -> int:
    return guestmem.read_word(addr)


def tracepoint_list() -> list[list]:
    """Every tracepoint OSv knows (tracepoint_base::tp_list, a boost intrusive list linked
    through tp_list_link), as [key, name, sig, format]: what create_trace_dump() writes
    into TRCD. The strings are in loader.elf's read-only data: gdb reads them from the file."""
    tl = layout_of("tracepoint_base")
    hook = tl.offset("tp_list_link")
    ulong = gdb.lookup_type("unsigned long")
    try:
        head = int(gdb.parse_and_eval("&tracepoint_base::tp_list.data_.root_plus_size_.m_header").cast(ulong))
    except gdb.error:
        head = int(gdb.parse_and_eval("&tracepoint_base::tp_list").cast(ulong))
    out: list[list] = []
    gdb.execute("set trust-readonly-sections on", to_string=True)
    try:
        node = _word(head)
        while node and node != head:
            if len(out) > 100_000:
                raise OsvError("tracepoint_base::tp_list does not end (damaged?)")
            tp = node - hook
            f = read_fields(tp, tl, ["name", "sig", "format"])
            out.append([tp, read_string(f["name"], 128), read_string(f["sig"], 64), read_string(f["format"], 256)])
            node = _word(node)
    finally:
        gdb.execute("set trust-readonly-sections off", to_string=True)
    return out


def snapshot(directory: str) -> dict:
    """Every CPU's trace buffer, whole, into DIRECTORY/cpuN.ring (one QEMU memsave each, at
    the guest-virtual address of trace_buf::_base), and DIRECTORY/snapshot.json: per CPU
    its size and _last (where it writes: what says how the ring wrapped), the tracepoint
    dictionary, the backtrace length and the page size. The host side
    (osvtrace.format.osv_write) makes an OSVT dump of it."""
    t0 = time.perf_counter()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    off = int(gdb.parse_and_eval("&percpu_trace_buffer._var").cast(gdb.lookup_type("unsigned long")))
    bl = layout_of("trace_buf")
    base_off = unique_ptr_offset(bl, "_base")
    lay = record_layout()
    t1 = time.perf_counter()
    rows = []
    for c in cpus():
        f = read_fields(c.percpu_base + off, bl, ["_last", "_size"])
        base = _word(c.percpu_base + off + base_off)
        row = {"cpu": c.id, "base": base, "size": f["_size"], "last": f["_last"], "file": "",
               "last_addr": c.percpu_base + off + bl.offset("_last")}
        if base and f["_size"] and not f["_size"] & (f["_size"] - 1) and f["_size"] <= 1 << 30:
            path = out / f"cpu{c.id}.ring"
            gdb.execute(f'monitor memsave {base:#x} {f["_size"]} "{path}"', to_string=True)
            if not path.is_file() or path.stat().st_size != f["_size"]:
                raise OsvError(f"memsave of cpu{c.id}'s trace buffer ({f['_size']} bytes at {base:#x}) failed")
            row["file"] = path.name
        rows.append(row)
    t2 = time.perf_counter()
    tps = tracepoint_list()
    t3 = time.perf_counter()
    meta = {"kernel": "osv", "bt_len": lay.backtrace_len, "page": lay.page, "header": lay.size, "cpus": rows,
            "tracepoints": tps,
            "seconds": {"layout": t1 - t0, "buffers": t2 - t1, "dictionary": t3 - t2, "total": t3 - t0}}
    tmp = out / (SNAPSHOT_META + ".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, out / SNAPSHOT_META)
    return meta


def trace_snapshot(arg: str, from_tty: bool) -> None:
    argv = gdb.string_to_argv(arg)
    if len(argv) != 1:
        raise OsvError("usage: osv trace snapshot DIR")
    meta = snapshot(argv[0])
    nbytes = sum(r["size"] for r in meta["cpus"] if r["file"])
    gdb.write(f"osv trace snapshot: {len(meta['cpus'])} CPU(s), {nbytes:,} bytes of buffers, "
              f"{len(meta['tracepoints'])} tracepoints in {meta['seconds']['total']:.3f} s "
              f"(buffers {meta['seconds']['buffers']:.3f} s) -> {argv[0]}\n")
