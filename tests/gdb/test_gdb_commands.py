"""The osv gdb commands against the real kernel in QEMU (TCG) with real gdb (MI).

At a known point (gdbcheck_stop) the gdbcheck app has printed its own view of every
thread, mutex owner and waiter; gdb stopped there must agree with it. Then the
commands that change things (thread contexts, enable flags) and the ones that must
cope with a kernel stopped anywhere (before boot, mid context switch).
"""

from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest

import osvtrace
from osvtrace.catalog.schema import default_catalog
from tests.support.gdb import BROKEN, Booted, parse_app, parse_info_threads
from tests.support.net import free_udp_port
from tests.support.vm import ROOT, require_tools

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]

TRACE = "sched_*,mutex_*,thread_*"
# Every osv command, as the random-stop test runs them (tests/gdb/test_gdb_robust.py).
COMMANDS = ["osv info threads", "osv info threads --stacks", "osv runqueue", "osv percpu", "osv mutex all",
            "osv mutex all --stacks", "osv memory",
            "osv dmesg 5", "osv netchannels", "osv trace 10", "osv trace 5 --tp sched_* --cpu 0 --stacks",
            "osv trace status"]
REGS = "rip rsp rbp rbx r12 r13 r14 r15"


@pytest.fixture(scope="module")
def stopped(kernel):
    """gdbcheck on 2 CPUs, stopped in gdbcheck_stop(): (Booted, the app's view)."""
    require_tools("gdb")
    b = Booted(kernel, "gdbcheck", smp=2, trace=TRACE)
    try:
        b.run_to("gdbcheck_stop")
        view = parse_app(b.console_until("stopping"))
        assert view.threads and view.mutexes and view.waitqueues, b.vm.console_text()
        yield b, view
    finally:
        b.close()


def by_name(view) -> dict[str, int]:
    return {name: tid for tid, (name, *_rest) in view.threads.items()}


# ---------------------------------------------------------------- gdb agrees with the kernel

def test_info_threads_agrees_with_the_kernel(stopped):
    b, view = stopped
    rows = parse_info_threads(b.osv("osv info threads"))
    assert set(rows) == set(view.threads)
    names = by_name(view)
    gate = view.waitqueues["gate"][0]
    for tid, (name, state, cpu, wait) in view.threads.items():
        row = rows[tid]
        assert row["name"] == name
        if name.startswith("idle") and row["state"] != "running":
            assert state == "running" and row["state"] == "runnable"  # a switched-out idle thread
        else:
            assert row["state"] == state, (tid, row)
        if state in ("waiting", "sleeping"):
            assert int(row["cpu"]) == cpu, (tid, row)  # a blocked thread's home does not change
            assert row["last-ran"] != "now" and row["cpu-time"] and row["thread"].startswith("0x")
        if name.startswith("waiter-"):
            assert row["wait"] == "mutex gdbcheck::held" and wait == view.mutexes["held"][0]
        elif name.startswith("parked-") or name == "holder":
            assert row["wait"] == "waitqueue gdbcheck::gate" and wait == gate
        elif name.startswith("sleeper-"):
            assert row["wait"].startswith("sleep until ")
    assert rows[names["main"]]["state"] == "running" and rows[names["main"]]["last-ran"] == "now"


def test_mutex_owner_and_waiters_in_order(stopped):
    b, view = stopped
    addr, owner, waiters = view.mutexes["held"]
    out = b.osv("osv mutex gdbcheck::held")
    assert out.splitlines()[0] == f"mutex gdbcheck::held at {addr:#x}"
    names = {tid: n for tid, (n, *_r) in view.threads.items()}
    assert f"owner     thread {owner} ({names[owner]}), depth 1" in out
    listed = [int(x) for x in re.findall(r"^\s+\d+\. thread (\d+) ", out, re.M)]
    assert listed == waiters
    assert "hand-off  none" in out
    assert f"count {1 + len(waiters)} " in out
    # the same mutex by address, and through a pointer
    assert b.osv(f"osv mutex {addr:#x}") == out
    assert b.osv("osv mutex &gdbcheck::held") == out


def test_mutex_shows_the_owners_and_each_waiters_stack_down_to_the_app_function(stopped):
    b, view = stopped
    _, owner, waiters = view.mutexes["held"]
    out = b.osv("osv mutex gdbcheck::held")
    blocks: dict[int, list[str]] = {}  # thread id -> the frame lines under it
    cur = None
    for ln in out.splitlines():
        m = re.match(r"^\s+(?:owner\s+|\d+\. )thread (\d+) ", ln)
        if m:
            cur = blocks.setdefault(int(m[1]), [])
        elif re.match(r"^\s+#\d+\s+0x", ln) and cur is not None:
            cur.append(ln)
        elif not ln.startswith("      "):
            cur = None
    assert set(blocks) == {owner, *waiters}, out
    for tid in waiters:
        names = [re.search(r" in (.+?)(?:\+0x[0-9a-f]+)?(?: \[.*?\])*(?: at \S+)?$", ln)[1] for ln in blocks[tid]]
        k = names.index("(anonymous namespace)::waiter")  # the app function that called lock()
        assert names[k - 1].startswith("lockfree::mutex<") and names[k - 1].endswith("::lock"), blocks[tid]
        assert re.search(r" at apps/gdbcheck\.cc:\d+$", blocks[tid][k]), blocks[tid]
    # the owner waits on the gate, holding the mutex, in the app's holder()
    assert any(" in (anonymous namespace)::holder" in ln for ln in blocks[owner]), blocks[owner]
    assert "#" not in b.osv("osv mutex --no-stacks gdbcheck::held")


def _per_thread(out: str, frame: str) -> dict[int, list[str]]:
    """Function names of the frames under each `thread ID (name) state:` line."""
    got: dict[int, list[str]] = {}
    cur: list[str] = []
    for ln in out.splitlines():
        if m := re.match(r"^thread (\d+) \(", ln):
            cur = got.setdefault(int(m[1]), [])
        elif m := re.match(frame, ln):
            cur.append(m[1])
    return got


def test_info_threads_stacks_are_the_frames_bt_shows_in_each_thread(stopped):
    b, view = stopped
    ours = _per_thread(b.osv("osv info threads --stacks"),
                       r"^\s+#\d+\s+0x[0-9a-f]+ in (.+?)(?:\+0x[0-9a-f]+)?(?: \[.*?\])*(?: at \S+)?$")
    bts = _per_thread(b.osv("osv thread apply all bt"), r"^#\d+\s+(?:0x[0-9a-f]+ in )?(.+?) \(")
    assert set(ours) == set(view.threads) and ours == bts, (ours, bts)
    waiters = [tid for tid, (name, *_r) in view.threads.items() if name.startswith("waiter-")]
    assert all("(anonymous namespace)::waiter" in ours[t] for t in waiters), ours


def test_mutex_all_lists_the_apps_mutexes(stopped):
    b, view = stopped
    rows = {}
    for ln in b.osv("osv mutex all").splitlines()[1:]:
        cells = re.split(r"\s{2,}", ln.strip())  # cells are apart by two spaces or more
        rows[cells[1]] = cells
    held_addr, held_owner, held_waiters = view.mutexes["held"]
    mine_addr, mine_owner, _ = view.mutexes["mine"]
    assert rows["gdbcheck::held"][0] == f"{held_addr:#x}" and rows["gdbcheck::held"][2] == "held"
    assert rows["gdbcheck::held"][3] == f"{held_owner} (holder)"
    assert rows["gdbcheck::held"][-1] == ",".join(map(str, held_waiters))
    assert rows["gdbcheck::mine"][0] == f"{mine_addr:#x}" and rows["gdbcheck::mine"][3] == f"{mine_owner} (main)"
    assert rows["gdbcheck::gate.m_"][2] == "free"
    assert "pages::(anonymous namespace)::lock" in rows


def test_pretty_printers(stopped):
    b, view = stopped
    names = {tid: n for tid, (n, *_r) in view.threads.items()}
    _, owner, waiters = view.mutexes["held"]
    want = f"mutex held by {owner} ({names[owner]}), depth 1, waiters [" + \
        ", ".join(f"{t} ({names[t]})" for t in waiters) + "]"
    assert b.cli("print gdbcheck::held").split(" = ", 1)[1].strip() == want
    assert b.cli("print gdbcheck::mine").split(" = ", 1)[1].strip().startswith(
        f"mutex held by {view.mutexes['mine'][1]} (main), depth 1")
    gate = view.waitqueues["gate"][1]
    assert b.cli("print gdbcheck::gate").split(" = ", 1)[1].strip() == \
        "waitqueue, waiters [" + ", ".join(f"{t} ({names[t]})" for t in gate) + "]"
    w = waiters[0]
    assert b.cli(f"print *$osv_thread({w})").split(" = ", 1)[1].strip() == \
        f"thread {w} ({names[w]}) waiting: mutex gdbcheck::held"
    main_cpu = re.search(r"^cpu (\d+): running \d+ \(main\)", b.osv("osv runqueue"), re.M)[1]
    assert b.cli(f"print $osv_current({main_cpu})->id").split(" = ")[1].strip() == str(by_name(view)["main"])
    assert b.cli("print $osv_current()->id").split(" = ")[1].strip() == str(by_name(view)["main"])
    assert b.cli("print $osv_thread(9999)").strip().endswith("0x0")


def test_runqueue_and_percpu(stopped):
    b, view = stopped
    names = by_name(view)
    rq = b.osv("osv runqueue")
    cpus = re.findall(r"^cpu (\d+): running (\d+) \((\S+)\)", rq, re.M)
    assert [c for c, _, _ in cpus] == ["0", "1"]
    assert ("main" in {n for _, _, n in cpus})
    main_cpu = next(c for c, _, n in cpus if n == "main")
    assert "run queue: 0 thread(s) (nr_queued 0)" in rq  # everything else is blocked
    pc = b.osv(f"osv percpu {main_cpu}")
    assert re.search(rf"^\s+current\s+{names['main']} \(main\)$", pc, re.M), pc
    assert re.search(rf"^\s+id\s+{main_cpu}$", pc, re.M)
    assert b.osv("osv percpu 7").startswith("ERROR osv: no CPU 7 (online: 0, 1)")


def test_memory_agrees_with_the_kernel(stopped):
    b, view = stopped
    out = b.osv("osv memory")
    m = re.search(r"^pages: (\d+) pages of 4096 bytes .*?, (\d+) free", out, re.M)
    assert m, out
    assert int(m[1]) == view.memory["pages_total"] and int(m[2]) == view.memory["pages_free"]
    assert re.search(rf"^heap: {view.memory['heap_in_use']} bytes in use", out, re.M), out
    assert "lock: free" in out and "depot lock: free" in out


def test_dmesg_is_the_console(stopped):
    b, view = stopped
    console = [ln for ln in b.vm.console_text().splitlines() if ln.startswith("gdbcheck: ")]
    out = b.osv("osv dmesg").splitlines()
    assert [ln for ln in out if ln.startswith("gdbcheck: ")] == console
    assert b.osv("osv dmesg 1").strip() == console[-1]


def test_trace_records_and_status(stopped):
    b, view = stopped
    out = b.osv("osv trace 30 --tp mutex_*")
    lines = out.splitlines()
    assert len(lines) == 30 and all(re.match(r"^\S+\s+\d \d+\.\d{9} mutex_\w+", ln) for ln in lines), out
    held = f"{view.mutexes['held'][0]:#x}"
    waits = b.osv("osv trace 100 --tp mutex_lock_wait").splitlines()
    assert [ln.split()[0] for ln in waits if ln.endswith(held)] == ["waiter-1", "waiter-2", "waiter-3"], waits
    one = b.osv("osv trace 5 --cpu 1").splitlines()
    assert len(one) == 5 and all(ln.split()[1] == "1" for ln in one)
    st = b.osv("osv trace status")
    want = [tp.name for tp in default_catalog().match(TRACE.split(","))]
    assert st.splitlines()[-2] == f"enabled ({len(want)}): {', '.join(want)}"
    held_rows = {ln.split()[1]: ln.split() for ln in st.splitlines() if re.match(r"^\s*\d+\s+\w+\s+(on|off)\s+\d+$", ln)}
    assert held_rows["mutex_lock_wait"][2] == "on" and int(held_rows["mutex_lock_wait"][3]) >= 3
    assert held_rows["net_rx"][2:] == ["off", "0"]
    assert b.osv("osv trace 5 --tp nosuch").strip() == \
        "ERROR osv: 'nosuch' matches no tracepoint (globs are anchored: try 'nosuch*')"


def test_trace_save_opens(stopped, tmp_path):
    b, view = stopped
    out = b.osv(f"osv trace save {tmp_path}/t.osvt")
    assert re.match(r"osv: saved [\d,]+ slots from 2 CPU\(s\), \d+ threads to ", out), out
    t = osvtrace.open(tmp_path / "t.osvt")
    assert set(by_name(view)) <= set(t.threads.values())
    assert len(t.args("mutex_lock_wait")[0]) >= 3


def test_netchannels_when_no_socket_is_open(stopped):
    b, _ = stopped
    assert b.osv("osv netchannels") == "no net channels in use (no socket opened yet)\n"


def test_netchannels_agree_with_the_sockets(kernel):
    """udp-echo with two worker threads (one socket and channel each) answered N datagrams
    from the host; stopped, each channel shows its owner asleep on it, nothing queued or
    dropped, and between them the N datagrams the sockets counted."""
    require_tools("gdb")
    n = 25
    port = free_udp_port()
    with Booted(kernel, "udp-echo", "7", "--threads", "2", smp=2, net="user", hostfwd=(f"udp:{port}-:7",),
                trace="net_*") as b:
        b.gdb.continue_()
        b.console_until("listening on udp port", 60)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(10)
            for i in range(n):
                s.sendto(b"ping %d" % i, ("127.0.0.1", port))
                assert s.recvfrom(100)[0] == b"ping %d" % i
        # The workers go back to sleep on their channels after their last replies: stopped once
        # both are (looked at every 0.1 s, up to 30 s; a fixed 0.3 s is not enough when the
        # loaded host does not run a vCPU for that long)
        deadline = time.monotonic() + 30
        while True:
            time.sleep(0.1)
            b.gdb.interrupt()
            out = b.osv("osv netchannels")
            if out.count("open, waiting") == 2 or time.monotonic() > deadline:
                break
            b.gdb.continue_()
        rows = [re.split(r"\s{2,}", ln.strip()) for ln in out.splitlines()[1:]]
        assert len(rows) == 2, out
        threads = parse_info_threads(b.osv("osv info threads"))
        total = 0
        for addr, sock, owner, depth, drops, state, stats in rows:
            assert sock == "udp :7" and depth == "0/256" and drops == "0" and state == "open, waiting", out
            tid = int(owner.split()[0])
            assert threads[tid]["name"] == owner.split()[1].strip("()") and threads[tid]["state"] == "waiting"
            assert threads[tid]["wait"] == f"net channel {addr} (udp :7)"
            recv, sent, bad = map(int, stats.split("/"))
            assert recv == sent and bad == 0
            total += recv
            assert b.cli(f"print *(net::channel *){addr}").split(" = ", 1)[1].strip() == \
                f"net channel, depth 0/256, 0 drops, owner {owner} waiting, udp port 7"
        assert total == n
        pushes = b.osv("osv trace 500 --tp net_channel_push").splitlines()
        assert len(pushes) == n and {ln.split()[4] for ln in pushes} == {r[0] for r in rows if r[6] != "0/0/0"}


def test_thread_context_bt_and_restore(stopped):
    b, view = stopped
    before = b.cli(f"info registers {REGS}")
    w = view.mutexes["held"][2][0]
    note = b.osv(f"osv thread {w}")
    assert note.startswith(f"osv: thread {w} (waiter-1) waiting: its saved context is loaded into vCPU "), note
    bt = b.cli("bt")
    assert "lockfree::mutex<kmutex::platform>::lock" in bt and "(anonymous namespace)::waiter" in bt, bt
    assert "thread_trampoline" in bt
    frame = re.search(r"^#(\d+) .* lockfree::mutex<kmutex::platform>::lock", bt, re.M)[1]
    assert "gdbcheck::held" in b.cli(f"frame {frame}")
    assert b.osv("osv thread") == f"osv: thread {w} is selected; `osv thread restore` returns\n"
    sleeper = by_name(view)["sleeper-1"]
    b.osv(f"osv thread {sleeper}")  # from one thread straight to another
    assert "threads::sleep_ns" in b.cli("bt")
    assert b.osv("osv thread restore") == "osv: restored the vCPU registers\n"
    assert b.cli(f"info registers {REGS}") == before
    assert "gdbcheck_stop" in b.cli("bt 1")
    assert b.osv("osv thread restore") == "osv: nothing to restore\n"


def test_thread_on_a_cpu_selects_its_vcpu(stopped):
    b, view = stopped
    main = by_name(view)["main"]
    out = b.osv(f"osv thread {main}")
    assert re.match(rf"osv: thread {main} \(main\) is running on cpu \d: selected its vCPU", out), out
    assert "gdbcheck_stop" in b.cli("bt 1")
    b.osv("osv thread restore")


def test_thread_apply(stopped):
    b, view = stopped
    before = b.cli(f"info registers {REGS}")
    out = b.osv("osv thread apply all bt 2")
    for tid, (name, *_r) in view.threads.items():
        assert re.search(rf"^thread {tid} \({re.escape(name)}\) \w+:$", out, re.M), (tid, out)
    assert out.count("sched::schedule") >= len(view.threads) - 3
    w = view.mutexes["held"][2]
    # the lock's frame number follows the compiler's inlining: found in one waiter's bt, then the
    # same `frame N` applied to two waiters shows the lock in each
    bt = b.osv(f"osv thread apply {w[0]} bt")
    n = re.search(r"^#(\d+) .*lockfree::mutex<kmutex::platform>::lock", bt, re.M)
    assert n, bt
    out = b.osv(f"osv thread apply {w[0]} {w[1]} frame {n[1]}")
    assert out.count("lockfree::mutex<kmutex::platform>::lock") == 2, out
    assert b.cli(f"info registers {REGS}") == before
    assert b.osv("osv thread apply 12345 bt").startswith("ERROR osv: no thread 12345")
    assert b.osv("osv thread apply bt").strip() == "ERROR osv: usage: osv thread apply all|ID... CMD"


def test_every_command_has_help(stopped):
    b, _ = stopped
    listing = b.cli("help osv")
    cmds = sorted(set(re.findall(r"^(osv [\w ]+?) -- ", listing, re.M)))
    for sub in ("info", "thread", "trace"):
        cmds += re.findall(r"^(osv [\w ]+?) -- ", b.cli(f"help osv {sub}"), re.M)
    want = {"osv info threads", "osv thread", "osv thread restore", "osv thread apply", "osv runqueue",
            "osv percpu", "osv mutex", "osv netchannels", "osv memory", "osv dmesg", "osv trace",
            "osv trace status", "osv trace enable", "osv trace disable", "osv trace save"}
    assert want <= set(cmds), set(cmds)
    for c in want:
        h = b.cli(f"help {c}")
        assert "This command is not documented" not in h and len(h.strip().splitlines()) >= 2, (c, h)
    for line in re.findall(r"^osv [\w ]+? -- (.*)$", listing + b.cli("help osv trace") + b.cli("help osv thread"), re.M):
        assert line.endswith((".", "...", "below).")), f"the summary line is cut: {line!r}"
    for f in ("osv_thread", "osv_current"):
        assert "This function is not documented" not in b.cli(f"help function {f}")
    docs = (ROOT / "docs" / "gdb.md").read_text()
    for c in want:
        assert f"`{c}" in docs, f"docs/gdb.md does not describe {c}"


# ---------------------------------------------------------------- changing the running guest

def test_enable_takes_effect_in_the_running_guest(kernel):
    """Tracing off at boot; enabled from gdb at the stop point; the records after it
    (the app releasing its threads) are in the rings, and nothing from before."""
    require_tools("gdb")
    with Booted(kernel, "gdbcheck", smp=2) as b:
        b.run_to("gdbcheck_stop")
        before = b.osv("osv trace 5")
        assert before.startswith("no records in the rings (enabled: none)"), before
        assert b.osv("osv trace enable thread_exit,mutex_handoff") == "enabled: thread_exit, mutex_handoff\n"
        b.run_to("osvtrace_app_exit")
        out = b.osv("osv trace 100").splitlines()
        tps = {ln.split()[3] for ln in out}
        assert tps == {"thread_exit", "mutex_handoff"}, (out, b.vm.console_text()[-2000:])
        exited = {ln.split()[0] for ln in out if " thread_exit " in ln}
        assert {"holder", "parked-1", "parked-2", "waiter-1", "waiter-2", "waiter-3"} <= exited, out
        assert b.osv("osv trace disable *").startswith("disabled: ")
        assert "enabled (0): -" in b.osv("osv trace status")


def test_continue_restores_the_registers_first(kernel):
    """`osv thread N` then `continue` (the CLI command, with its hook): the VM resumes on
    its own registers and the app finishes normally."""
    require_tools("gdb")
    with Booted(kernel, "gdbcheck", smp=2) as b:
        b.run_to("gdbcheck_stop")
        view = parse_app(b.console_until("stopping"))
        b.osv(f"osv thread {view.mutexes['held'][2][0]}")
        b.gdb.mi("-break-insert osvtrace_app_exit")
        said = b.cli("continue")
        stop = b.gdb.wait_stopped(60)
        assert stop.results.get("reason") == "breakpoint-hit", \
            (stop, said, "".join(b.gdb.log[-30:]), b.vm.console_text()[-3000:])
        assert "gdbcheck: released" in b.console_until("gdbcheck: released")
        assert b.osv("osv thread restore") == "osv: nothing to restore\n"


# ---------------------------------------------------------------- stopped anywhere

def _every_command(b: Booted) -> dict[str, str]:
    out = {c: b.osv(c) for c in COMMANDS + ["osv mutex gdbcheck::held", "osv thread 2", "bt 3",
                                            "osv thread restore", "osv thread apply all bt 1"]}
    for c, text in out.items():
        lines = [ln for ln in text.splitlines() if ln.strip()]
        assert lines, f"{c!r} said nothing"
    return out


def test_before_the_first_instruction(kernel):
    """QEMU halted at reset: no CPU set up, nothing published. Every command answers or
    says in one line what it cannot read."""
    require_tools("gdb")
    with Booted(kernel, "gdbcheck") as b:
        out = _every_command(b)
    assert out["osv info threads"] == "no threads yet (the kernel has not created any)\n"
    assert out["osv runqueue"] == "ERROR osv: no CPU is set up yet (the kernel is still booting: ncpus is 0)\n"
    assert out["osv trace status"].startswith("ERROR osv: the control block at 0x")
    assert out["osv memory"].startswith("pages: not set up yet")
    assert out["osv dmesg 5"] == "the kernel log is empty (nothing printed yet)\n"
    for c, text in out.items():
        if text.startswith("ERROR"):
            assert len(text.strip().splitlines()) == 1, (c, text)


@pytest.mark.parametrize("where", ["kernel_entry", "trace_rt::publish", "threads::create", "sched::idle_loop"])
def test_during_boot(kernel, where):
    require_tools("gdb")
    with Booted(kernel, "gdbcheck", smp=2, trace="*") as b:
        b.run_to(where)
        out = _every_command(b)
    if where == "kernel_entry":
        assert out["osv info threads"].startswith(("no threads yet", "ERROR osv: "))
    if where == "sched::idle_loop":
        assert "idle0" in out["osv info threads"]


def test_after_a_panic(kernel):
    """Stopped on the way out of a kernel panic (a null pointer write in a thread)."""
    require_tools("gdb")
    with Booted(kernel, "crash", "null", smp=2, trace="*") as b:
        b.run_to("debug_exit::exit_panic")
        out = _every_command(b)
    assert "panic" in out["osv dmesg 5"].lower(), out["osv dmesg 5"]
    assert "main" in out["osv info threads"]


def test_mid_context_switch(kernel):
    """Stopped inside arch_switch after it saved the outgoing stack pointer and before it
    loaded the incoming one: both threads claim the CPU for a moment."""
    require_tools("gdb")
    with Booted(kernel, "pingpong", "200", trace="*") as b:
        # stop at `mov (%rsi),%rsp`: prev's stack pointer saved, next's not yet loaded
        at = re.search(r"^\s*(0x[0-9a-f]+) <arch_switch\+\d+>:\s+mov\s+\(%rsi\),%rsp", b.cli("x/12i arch_switch"), re.M)
        b.cli(f"break *{at[1]}")
        b.gdb.continue_()
        b.gdb.wait_stopped(60)
        insn = b.cli("x/i $pc")
        assert "(%rsi),%rsp" in insn, insn
        out = _every_command(b)
        assert "[still leaving its CPU]" in out["osv info threads"], out["osv info threads"]


def test_without_a_live_kernel(kernel):
    """No target at all: one line each, no traceback."""
    require_tools("gdb")
    argv = ["gdb", "-nx", "-batch", "-x", str(ROOT / "gdb" / "osv.py"), str(kernel)]
    for c in COMMANDS + ["osv thread 2", "osv thread apply all bt", "osv mutex gdbcheck::held", "print gdbcheck::held",
                         "print *$osv_thread(2)"]:
        argv += ["-ex", c]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")
    out = r.stdout + r.stderr
    for bad in BROKEN:
        assert bad not in out, out
    assert out.count("osv: no running kernel: connect first") >= len(COMMANDS), out
    assert "mutex free" in out  # a printer reads the ELF's image when nothing runs
