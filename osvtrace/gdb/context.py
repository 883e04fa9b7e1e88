"""`osv thread ID`, `osv thread restore`, `osv thread apply all|ID... CMD`: look at a
kernel thread through gdb's own commands (bt, frame, info locals, up ...).

gdb sees QEMU's vCPUs, not kernel threads. A thread that runs on a CPU is shown
by selecting that vCPU (its %gs base is the CPU's struct cpu). A switched-out
thread is shown by loading its saved context (the frame arch_switch left on
its stack) into the selected vCPU's registers; `osv thread restore` puts the
vCPU's own registers back, and so does every command that resumes the VM
(continue, step, next, finish, detach, kill ... through gdb hooks) and quitting
gdb. Which registers arch_switch saves, and in what order, is read from its
code (the pops before its `ret`), not written down here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo, guestmem, percpu, stacks, stacktext, threadtable

SWITCH_SYMBOL = "arch_switch"
# Commands that resume or leave the VM: registers are restored before each.
RESUMING = ("continue", "step", "next", "stepi", "nexti", "finish", "until", "advance", "jump", "signal",
            "detach", "kill", "disconnect", "run", "start", "call", "return")
_POP = re.compile(r"^pop[q]?\s+%?(\w+)$")


@dataclass
class _State:
    """What `osv thread` changed: per vCPU (gdb thread number) the registers it
    overwrote, and the vCPU that was selected before."""

    saved: dict[int, dict[str, int]] = field(default_factory=dict)
    home_vcpu: int | None = None
    tid: int | None = None  # the kernel thread shown


STATE = _State()
_frame_cache: list[tuple[str, ...]] = []


def switch_frame() -> tuple[str, ...]:
    """Registers arch_switch pops from a saved stack, in order, then 'rip' (its ret)."""
    if _frame_cache:
        return _frame_cache[0]
    try:
        start = int(gdb.parse_and_eval(f"&{SWITCH_SYMBOL}"))
    except gdb.error:
        raise commands.OsvError(f"no {SWITCH_SYMBOL} in the kernel ELF: cannot find saved thread contexts") from None
    insns = gdb.selected_inferior().architecture().disassemble(start, count=64)
    run: list[str] = []
    for ins in insns:
        asm = " ".join(ins["asm"].split())
        m = _POP.match(asm)
        if m:
            run.append(m.group(1))
        elif asm.startswith("ret"):
            break
        else:
            run = []
    else:
        raise commands.OsvError(f"cannot find the end of {SWITCH_SYMBOL} (no ret in its first 64 instructions)")
    if not run or "rbp" not in run:
        raise commands.OsvError(f"cannot read the saved-register frame from {SWITCH_SYMBOL}'s code")
    _frame_cache.append((*run, "rip"))
    return _frame_cache[0]


debuginfo.on_invalidate(_frame_cache.clear)


def saved_registers(t: threadtable.Thread) -> dict[str, int]:
    """The registers a switched-out thread resumes with: its saved frame, and rsp past it."""
    frame = switch_frame()
    if not t.saved_rsp:
        raise commands.OsvError(f"thread {t.tid} ({t.name}) has no saved context (saved_rsp is 0)")
    w = guestmem.word()  # each push/pop moves one word
    raw = guestmem.read_small(t.saved_rsp, w * len(frame))
    regs = {r: int.from_bytes(raw[w * i:w * (i + 1)], "little") for i, r in enumerate(frame)}
    regs["rsp"] = t.saved_rsp + w * len(frame)
    return regs


def _select_vcpu(num: int) -> None:
    th = next((th for th in gdb.selected_inferior().threads() if th.num == num), None)
    if th is None:
        raise commands.OsvError(f"gdb has no thread {num} (vCPU) any more")
    th.switch()


def _write_registers(regs: dict[str, int], save_into: dict[str, int] | None = None) -> dict[str, int]:
    """Write registers of the selected vCPU's innermost frame; returns their old values.
    With `save_into`, the old values go there first (those not there already), so that a
    write failing halfway still leaves what is needed to put everything back."""
    f = gdb.newest_frame()
    f.select()
    old = {r: int(f.read_register(r)) & ((1 << 64) - 1) for r in regs}
    if save_into is not None:
        for r, v in old.items():
            save_into.setdefault(r, v)
    # rip last: gdb re-reads the frame after each write, and the others must be in place.
    for r in sorted(regs, key=lambda r: r == "rip"):
        try:
            gdb.newest_frame().select()
            gdb.execute(f"set var ${r} = {regs[r]:#x}", to_string=True)
        except gdb.error as e:
            fr = gdb.selected_frame()
            raise commands.OsvError(f"cannot set ${r} (frame level {fr.level()}, type {fr.type()}, "
                                  f"pc {fr.pc():#x} {fr.name()}): {e}") from None
    return old


def restore(quiet: bool = False) -> bool:
    """Put back every vCPU register `osv thread` changed; reselect the original vCPU.
    True if anything was restored. If a vCPU cannot be restored, its saved values are
    kept (a later restore tries again) and the error says so: a resuming command's hook
    then fails too, and gdb does not resume the VM with a thread's registers loaded."""
    if not STATE.saved and STATE.home_vcpu is None:
        return False
    problems = []
    for num, regs in list(STATE.saved.items()):
        try:
            _select_vcpu(num)
            _write_registers(regs)
            del STATE.saved[num]
        except (gdb.error, commands.OsvError) as e:
            problems.append(f"vCPU {num}: {commands.one_line(str(e))}")
    if problems:
        raise commands.OsvError("could not restore the registers of " + "; ".join(problems)
                              + " (retry `osv thread restore`; do not resume the VM before it succeeds)")
    if STATE.home_vcpu is not None:
        try:
            _select_vcpu(STATE.home_vcpu)
        except commands.OsvError:
            pass
    STATE.home_vcpu = None
    STATE.tid = None
    if not quiet:
        gdb.write("osv: restored the vCPU registers\n")
    return True


def show(t: threadtable.Thread, snap: threadtable.Snapshot) -> str:
    """Make gdb's selected frame thread t's; returns a note for the user."""
    guestmem.inferior()
    if t.state == "creating":
        raise commands.OsvError(f"thread {t.tid} is being created: it has no context yet")
    cur = gdb.selected_thread()
    if cur is None:
        raise commands.OsvError("gdb has no selected thread")
    home = STATE.home_vcpu if STATE.home_vcpu is not None else cur.num
    if t.running:
        cpu = next(c for c in snap.cpus if c.current == t.addr)
        th = percpu.vcpu_of(cpu.addr)
        if th is None:
            raise commands.OsvError(f"thread {t.tid} runs on cpu {cpu.id}, but no vCPU's %gs points at that CPU")
        th.switch()
        STATE.home_vcpu, STATE.tid = home, t.tid
        return f"thread {t.tid} ({t.name}) is running on cpu {cpu.id}: selected its vCPU (gdb thread {th.num})"
    if not t.stack and t.state == "dead":
        raise commands.OsvError(f"thread {t.tid} ({t.name}) has exited and its stack is gone")
    regs = saved_registers(t)
    vcpu = cur.num
    STATE.home_vcpu = home
    # The vCPU's own values, from before the first switch, saved before anything is written.
    _write_registers(regs, STATE.saved.setdefault(vcpu, {}))
    STATE.tid = t.tid
    note = f"thread {t.tid} ({t.name}) {t.state}: its saved context is loaded into vCPU {vcpu}"
    if t.leaving:
        note += " (it is still leaving its CPU: the saved context may be older than its last instructions)"
    return note + "; `osv thread restore` puts the vCPU back (so does continue/step)"


def _frame_line() -> str:
    try:
        return gdb.execute("frame", to_string=True).rstrip("\n")
    except gdb.error as e:
        return f"(no frame: {e})"


class ThreadCommand(commands.OsvCommand):
    """Look at a kernel thread with gdb's commands: bt, frame, up, info locals ...

    Usage: osv thread ID          select thread ID (its saved context, or its vCPU if running)
           osv thread restore     give the vCPUs their own registers back
           osv thread             show which thread is selected
    A switched-out thread's saved registers are loaded into the selected vCPU; they are
    put back by `osv thread restore` and before anything that resumes the VM.
    Example:
      (gdb) osv thread 5
      (gdb) bt
      (gdb) osv thread restore
    """

    def __init__(self) -> None:
        super().__init__("osv thread", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)

    def run(self, arg: str, from_tty: bool) -> None:
        argv = gdb.string_to_argv(arg)
        if not argv:
            if STATE.tid is None:
                gdb.write("osv: no kernel thread selected (the vCPUs show their own registers)\n")
            else:
                gdb.write(f"osv: thread {STATE.tid} is selected; `osv thread restore` returns\n")
            return
        if len(argv) != 1 or not argv[0].isdigit():
            raise commands.OsvError("usage: osv thread ID | osv thread restore | osv thread apply all|ID... CMD")
        tid = int(argv[0])
        snap = threadtable.snapshot()
        t = snap.by_id(tid)
        if STATE.tid is not None:
            restore(quiet=True)
        note = show(t, snap)
        gdb.write(f"osv: {note}\n{_frame_line()}\n")


class ThreadRestore(commands.OsvCommand):
    """Give the vCPUs their own registers back after `osv thread ID`.

    Also reselects the vCPU that was selected before. Resuming the VM does this by itself.

    Usage: osv thread restore
    """

    def __init__(self) -> None:
        super().__init__("osv thread restore", gdb.COMMAND_STACK)

    def run(self, arg: str, from_tty: bool) -> None:
        quiet = arg.strip() in ("-q", "--quiet")
        if not restore(quiet=quiet) and not quiet:
            gdb.write("osv: nothing to restore\n")


class ThreadApply(commands.OsvCommand):
    """Run a gdb command in the context of several kernel threads.

    Usage: osv thread apply all CMD
           osv thread apply ID [ID...] CMD
    Example:
      (gdb) osv thread apply all bt
      (gdb) osv thread apply 4 5 info locals
    """

    def __init__(self) -> None:
        super().__init__("osv thread apply", gdb.COMMAND_STACK)

    def run(self, arg: str, from_tty: bool) -> None:
        words = arg.split()
        ids: list[int] = []
        i = 0
        if words[:1] == ["all"]:
            i = 1
        else:
            while i < len(words) and words[i].isdigit():
                ids.append(int(words[i]))
                i += 1
        if (not ids and words[:1] != ["all"]) or i >= len(words):
            raise commands.OsvError("usage: osv thread apply all|ID... CMD")
        cmd = arg.split(None, i)[i] if i else arg
        snap = threadtable.snapshot()
        targets = [snap.by_id(tid) for tid in ids] if ids else [t for t in snap.threads if t.state != "creating"]
        if not targets:
            gdb.write("no threads yet (the kernel has not created any)\n")
            return
        for t, problem in each_shown(targets, snap):
            gdb.write(f"\nthread {t.tid} ({t.name}) {t.state}:\n")
            try:
                if problem:
                    raise commands.OsvError(problem)
                gdb.write(gdb.execute(cmd, to_string=True) or "")
            except (gdb.error, commands.OsvError) as e:
                gdb.write(f"osv: {e}\n")


def each_shown(targets: list[threadtable.Thread], snap: threadtable.Snapshot
               ) -> Iterator[tuple[threadtable.Thread, str]]:
    """Each thread in turn made gdb's selected frame (show), yielded with '' or why it could
    not be; the vCPU registers are put back after each, and a thread the user had selected
    with `osv thread` is selected again at the end."""
    before = STATE.tid
    if before is not None:
        restore(quiet=True)
    try:
        for t in targets:
            try:
                show(t, snap)
                problem = ""
            except (gdb.error, commands.OsvError) as e:
                problem = commands.one_line(str(e))
            try:
                yield t, problem
            finally:
                restore(quiet=True)
    finally:
        restore(quiet=True)
        if before is not None:
            try:
                show(snap.by_id(before), threadtable.snapshot())
            except commands.OsvError as e:
                gdb.write(f"osv: could not select thread {before} again: {e}\n")


def thread_stacks(targets: list[threadtable.Thread], snap: threadtable.Snapshot) -> dict[int, stacks.Unwound]:
    """Each thread's stack, unwound by gdb from its vCPU or its saved context (by tid)."""
    out = {}
    for t, problem in each_shown(targets, snap):
        out[t.tid] = stacks.Unwound(end=stacktext.UNAVAILABLE, detail=problem) if problem else stacks.unwind()
    return out


def _on_resume(_ev: Any) -> None:
    """The VM resumed without the registers restored (a path no hook covers, such as MI's
    -exec-continue): say so loudly; the saved values are stale from now on."""
    if STATE.saved:
        gdb.write("osv: warning: the VM resumed with a kernel thread's saved registers loaded into a vCPU; "
                  "use `osv thread restore` (or plain `continue`) before resuming\n")
        STATE.saved.clear()
        STATE.home_vcpu = None
        STATE.tid = None


def _on_exit(_ev: Any) -> None:
    try:
        restore(quiet=True)
    except Exception:  # gdb is leaving: nothing more to say
        pass


def _install_hooks() -> None:
    """`define hook-CMD` for every resuming command, unless the user has one already."""
    for c in RESUMING:
        try:
            existing = gdb.execute(f"show user hook-{c}", to_string=True)
        except gdb.error:
            existing = ""
        if existing.strip():
            continue
        try:
            gdb.execute(f"define hook-{c}\nosv thread restore -q\nend", to_string=True)
        except gdb.error:
            pass  # not a command in this gdb


def register() -> None:
    ThreadCommand()
    ThreadRestore()
    ThreadApply()
    _install_hooks()
    gdb.events.cont.connect(_on_resume)
    if hasattr(gdb.events, "gdb_exiting"):
        gdb.events.gdb_exiting.connect(_on_exit)
