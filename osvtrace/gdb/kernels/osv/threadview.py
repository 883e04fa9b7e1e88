"""`osv info threads`, `osv thread ID`, `osv thread apply`, `osv thread restore` on OSv.
The vCPU registers are saved and put back by osvtrace.gdb.context, as on our kernel."""

from __future__ import annotations

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, context, fmt
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.kernels.osv.mutex import wait_of
from osvtrace.gdb.kernels.osv.stacks import stack_lines, where, with_stacks
from osvtrace.gdb.kernels.osv.syms import load_app_symbols
from osvtrace.gdb.kernels.osv.threads import Thread, snapshot


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
    gdb.write(f"({len(snap.threads)} threads; * = on a vCPU now)\n")
    if snap.problem:
        gdb.write(f"osv: note: {snap.problem}\n")
    if "--stacks" in argv:
        for t in snap.threads:
            gdb.write(f"\nthread {t.tid} ({t.name}) {t.state}:\n")
            gdb.write("\n".join(stack_lines(t)) + "\n")


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


def thread_function(tid: object) -> object:
    """$osv_thread(ID) on OSv: the sched::thread * with that id (0 if none)."""
    snap = snapshot()
    t = next((t for t in snap.threads if t.tid == int(tid)), None)  # type: ignore[call-overload]
    return gdb.Value(t.addr if t else 0).cast(gdb.lookup_type("sched::thread").pointer())


def current_function(*args: object) -> object:
    """$osv_current([CPU]) on OSv: the thread on that CPU's vCPU (default: the selected vCPU's)."""
    snap = snapshot()
    if args:
        c = next((c for c in snap.cpus if c.id == int(args[0])), None)  # type: ignore[call-overload]
        if c is None:
            raise OsvError(f"no CPU {args[0]} (CPUs: {', '.join(str(c.id) for c in snap.cpus)})")
        vcpu = c.vcpu
    else:
        vcpu = gdb.selected_thread().num
    t = next((t for t in snap.threads if t.vcpu == vcpu), None)
    return gdb.Value(t.addr if t else 0).cast(gdb.lookup_type("sched::thread").pointer())
