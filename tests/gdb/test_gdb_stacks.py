"""Symbolized stacks in gdb on our kernel (real QEMU, TCG, real gdb): `osv trace --stacks` names
the stack trailers of records taken with tracebt=, `osv mutex` unwinds the owner and the waiters.

kernel/apps/stacks.cc gives known stacks: `chain` locks a mutex from stacks_chain_a -> _b -> _c
while the main thread holds it; `smash` breaks its frame pointer on purpose (a bad frame, a
loop) and takes a stack 24 frames deep (cut at 16). Function ranges come from the ELF's symbol
table and lines from the source file, never from numbers written here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.support.gdb import Booted
from tests.support.vm import ROOT, require_tools

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]

SOURCE = ROOT / "kernel" / "apps" / "stacks.cc"
CHAIN = ["stacks_chain_c", "stacks_chain_b", "stacks_chain_a"]  # innermost first
FRAME = re.compile(r"^\s+#(\d+)\s+(0x[0-9a-f]+) in (.*?)(?:\+(0x[0-9a-f]+))?(?: \[.*?\])*(?: at (\S+))?$")
REGS = "thread apply all info registers rip rsp rbp"


def line_of(text: str, after: int = 0) -> int:
    """The line number of the first source line holding `text` (after line `after`)."""
    for n, ln in enumerate(SOURCE.read_text().splitlines(), 1):
        if n > after and text in ln:
            return n
    raise AssertionError(f"{text!r} not in {SOURCE}")


def functions(kernel: Path, *names: str) -> dict[str, tuple[int, int]]:
    with open(kernel, "rb") as f:
        sym = ELFFile(f).get_section_by_name(".symtab")
        return {n: (s["st_value"], s["st_value"] + s["st_size"]) for n in names for s in sym.get_symbol_by_name(n) or []}


def frames(block: list[str]) -> list[tuple[int, str, int, str]]:
    """(return address, function, offset, file:line) of each frame line of a stack."""
    out = []
    for ln in block:
        m = FRAME.match(ln)
        if m:
            out.append((int(m[2], 16), m[3], int(m[4] or "-1", 16), m[5] or ""))
    return out


def records(out: str) -> list[tuple[str, list[str]]]:
    """`osv trace --stacks` output: each record's line and the indented lines under it."""
    got: list[tuple[str, list[str]]] = []
    for ln in out.splitlines():
        if ln.startswith(" ") and got:
            got[-1][1].append(ln)
        elif ln.strip():
            got.append((ln, []))
    return got


@pytest.fixture(scope="module")
def chain(kernel):
    """stacks chain on 2 CPUs with tracebt=mutex_lock_wait, stopped where main is about to
    unlock chain_lock while the chain thread waits in it."""
    require_tools("gdb")
    b = Booted(kernel, "stacks", "chain", "--rounds", "5", smp=2, trace="mutex_lock_wait", tracebt="mutex_lock_wait")
    try:
        b.gdb.mi("-break-delete")
        b.gdb.mi(f"-break-insert -f apps/stacks.cc:{line_of('chain_lock.unlock();', after=100)}")
        out = ""
        for _ in range(5):  # each round: the chain thread runs into the held lock while main sleeps
            b.gdb.continue_()
            stop = b.gdb.wait_stopped(120)
            assert stop.results.get("reason") == "breakpoint-hit", (stop, b.vm.console_text())
            out = b.osv("osv mutex --no-stacks '(anonymous namespace)::chain_lock'")
            if re.search(r"^\s+1\. thread \d+ \(chain\)", out, re.M):
                break
        else:
            pytest.fail(f"the chain thread never waited in chain_lock at main's unlock:\n{out}")
        yield b
    finally:
        b.close()


def test_trace_stacks_show_the_known_call_chain_by_name_with_raw_addresses(chain, kernel):
    out = chain.osv("osv trace 5 --tp mutex_lock_wait --stacks")
    recs = [(head, body) for head, body in records(out) if "mutex_lock_wait" in head]
    assert recs, out
    fns = functions(kernel, *CHAIN)
    lock_line = f"apps/stacks.cc:{line_of('chain_lock.lock();')}"
    for head, body in recs:
        assert head.split()[0] == "chain", head
        fr = frames(body)
        names = [f[1] for f in fr]
        k = names.index("stacks_chain_c")
        assert names[k:k + 3] == CHAIN, body  # adjacent, innermost first
        for (addr, name, off, where), want in zip(fr[k:k + 3], CHAIN):
            lo, hi = fns[want]
            assert lo < addr <= hi and off == addr - lo, (addr, name, off, fns[want])  # the raw return address
        assert fr[k][3] == lock_line, body  # the call: where c locks
        assert not any(ln.strip().startswith("(") for ln in body), body  # complete: no note
    # without --stacks the records stay one line each, and say that stacks are there
    plain = chain.osv("osv trace 5 --tp mutex_lock_wait")
    assert not re.search(r"^\s+#\d", plain, re.M) and "carry a stack: osv trace --stacks shows them" in plain, plain


def test_mutex_shows_the_waiters_stack_down_to_the_app_function_that_locked(chain):
    before = chain.cli(REGS)
    out = chain.osv("osv mutex '(anonymous namespace)::chain_lock'")
    lines = out.splitlines()
    owner_at = next(i for i, ln in enumerate(lines) if ln.startswith("  owner "))
    waiters_at = next(i for i, ln in enumerate(lines) if ln.startswith("  waiters "))
    end = next(i for i, ln in enumerate(lines) if ln.startswith("  hand-off "))
    assert "(main)" in lines[owner_at], out
    owner = frames(lines[owner_at + 1:waiters_at])
    assert owner[0][1] == "(anonymous namespace)::chain" and \
        owner[0][3] == f"apps/stacks.cc:{line_of('chain_lock.unlock();', after=100)}", out  # where main stopped
    assert re.match(r"\s+1\. thread \d+ \(chain\)", lines[waiters_at + 1]), out
    waiter = frames(lines[waiters_at + 2:end])
    names = [f[1] for f in waiter]
    k = names.index("stacks_chain_c")
    assert names[k:k + 3] == CHAIN, out
    assert names[k - 1].startswith("lockfree::mutex<") and names[k - 1].endswith("::lock"), out  # c called lock
    assert waiter[k][3] == f"apps/stacks.cc:{line_of('chain_lock.lock();')}", out
    assert names[0] == "sched::schedule", out  # from the saved context: where it switched away
    # the registers borrowed for the unwinding are back, and the same command says the same
    assert chain.cli(REGS) == before
    assert chain.osv("osv mutex '(anonymous namespace)::chain_lock'") == out
    table = chain.osv("osv mutex all --stacks")
    assert out in table, table  # the busy mutex with its stacks after the table


def test_stacks_that_loop_hit_a_bad_frame_or_the_depth_bound_are_marked(kernel):
    require_tools("gdb")
    with Booted(kernel, "stacks", "smash", smp=2, trace="trace_marker", tracebt="trace_marker") as b:
        b.run_to("osvtrace_app_exit")
        out = b.osv("osv trace 10 --tp trace_marker --stacks")
        recs = {int(head.split()[-1]): body for head, body in records(out) if "trace_marker" in head}
        assert sorted(recs) == [1, 2, 3, 4, 5, 6], out
        bad = "(stopped: a bad frame (a frame pointer outside the stack, misaligned, or unreadable))"
        loop = "(stopped: the frame chain loops (a frame not above the one before))"
        # 1: outside the stack, 3: misaligned; 2: itself, 4: below its frame (stacks.cc smash)
        for value, note in ((1, bad), (2, loop), (3, bad), (4, loop)):
            body = recs[value]
            assert body[-1].strip() == note, (value, body)
            assert [f[1] for f in frames(body)][0] == "stacks_smash", (value, body)
        deep = frames(recs[5])
        assert len(deep) == 16 and {f[1] for f in deep} == {"stacks_deep"}, recs[5]
        assert recs[5][-1].strip() == "(cut at 16 frames by the depth bound: outer frames not shown)"
        assert not recs[6][-1].strip().startswith("("), recs[6]  # a plain call: complete
        # gdb's own unwinding, bounded, and stopped at code outside the kernel (a vCPU's pc
        # pointed nowhere): the shared unwinder behind `osv mutex`, on the selected vCPU
        py = ("python from osvtrace.gdb import stacks, stacktext; u = stacks.unwind({}); "
              "print(chr(10).join(stacktext.stack_lines(u.sites, u.end, {}, u.detail)))")
        cut = b.cli(py.format(2, 2)).splitlines()
        assert frames(cut)[0][1] == "osvtrace_app_exit" and len(frames(cut)) == 2, cut
        assert cut[-1].strip() == "(cut at 2 frames by the depth bound: outer frames not shown)", cut
        pc = b.cli("output/x $pc").strip()
        b.cli("set var $pc = 0xdead0000dead0000")
        try:
            lost = b.cli(py.format(64, 64)).splitlines()
        finally:
            b.cli(f"set var $pc = {pc}")
        assert lost == ["    #0  0xdead0000dead0000 in ?? (outside the kernel: no code gdb knows is there)",
                        "    (stopped: a frame outside the kernel (no code gdb knows is there))"], lost


def test_a_samples_first_frame_is_the_interrupted_instruction(kernel):
    # cpu_sample's stack holds the interrupted code's callers; its `pc` argument is frame #0,
    # named as the instruction it is (not as a return address)
    require_tools("gdb")
    spin = ("stacks_hot", "stacks_cold", "stacks_spin_loop")
    fns = functions(kernel, *spin)
    with Booted(kernel, "stacks", "spin", "--ms", "1000", smp=2, trace="cpu_sample", sampler=200) as b:
        b.run_to("osvtrace_app_exit", timeout=120)
        out = b.osv("osv trace 200 --tp cpu_sample --stacks")
    samples = [(head, frames(body)) for head, body in records(out) if head.split()[0] == "main"]
    in_spin = [(head, fr) for head, fr in samples if fr and fr[0][1] in spin]
    assert len(in_spin) >= 5, out[-3000:]
    for head, fr in in_spin:
        pc = int(re.search(r"pc=(0x[0-9a-f]+)", head)[1], 16)
        addr, name, off, where = fr[0]
        lo, hi = fns[name]
        assert addr == pc and lo <= pc < hi and off == pc - lo and where.startswith("apps/stacks.cc:"), (head, fr)
        assert any(f[1].startswith("stacks_spin_") for f in fr[1:]), (head, fr)  # its callers follow
