"""SMP in the real kernel under real QEMU (TCG): CPUs come up, threads spread, wake-ups cross CPUs.

Also the helpers the other SMP and mutex tests use (`boot`, `parse_kv`): they
boot with an explicit TCG mode (`tcg,thread=multi` or `thread=single`), which
`osvtrace run` does not expose. Never skips: no QEMU or no build is a failure.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from osvtrace.vm import qemu
from osvtrace.vm.qemu import VmConfig
from tests.support.apps import boot
from tests.support.vm import osvtrace

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]


# ---------------------------------------------------------------- bring-up

@pytest.mark.parametrize("smp", [1, 2, 4, 8])
def test_all_cpus_come_up(kernel, smp):
    b = boot(kernel, "hello", smp=smp)
    assert b.app_status == 0, b.console
    assert b.line("smp: ").startswith(f"smp: {smp} CPU(s) online"), b.console
    # one "online" line per AP, each with its measured TSC offset
    online = re.findall(r"smp: CPU (\d+) \(APIC (\d+)\) online after \d+ us, TSC offset (-?\d+) \+- (\d+)", b.console)
    assert sorted(int(c) for c, *_ in online) == list(range(1, smp))


def test_cpus_come_up_on_q35_and_single_threaded_tcg(kernel):
    b = boot(kernel, "hello", smp=4, machine="q35", tcg="single")
    assert b.app_status == 0, b.console
    assert "smp: 4 CPU(s) online (madt)" in b.console


def test_busy_threads_spread_over_cpus(kernel):
    """4 CPU-bound threads on 4 vCPUs: each gets a CPU of its own, so each runs from the start."""
    b = boot(kernel, "spin", "4", "200", smp=4)
    assert b.app_status == 0, b.console
    runs = re.findall(r"switched in (\d+) times, cpu (\d+) to (\d+)", b.console)
    shares = [int(s) for s in re.findall(r"loops \((\d+)%\)", b.console)]
    assert len(runs) == 4 and len(shares) == 4, b.console
    # Nobody waited for another's time slice to end: each thread was switched in once, on a
    # CPU of its own, and stayed there. (This was `started within 100 ms` of guest time: a
    # vCPU the loaded host does not run for a while starts late, 46 ms seen at load 6, however
    # the kernel placed the threads.)
    assert all(int(n) == 1 and first == last for n, first, last in runs), b.console
    assert len({first for _, first, _ in runs}) == 4, b.console
    # shares follow how the host schedules the 4 vCPU threads on its cores (uneven when it
    # is loaded); each thread must still have made real progress
    assert min(shares) >= 2, b.console


def test_threads_stress_on_4_cpus_leaks_nothing(kernel):
    """Create/join across CPUs: ids wrap, guard pages come and go, stacks freed by joiners."""
    b = boot(kernel, "threads", "1500", smp=4)
    assert b.app_status == 0, b.console
    assert "pages leaked 0, heap bytes leaked 0" in b.console


def test_pingpong_across_cpus(kernel):
    b = boot(kernel, "pingpong", "5000", smp=2)
    assert b.app_status == 0, b.console
    assert "pingpong: 5000 passes each way" in b.console


def test_trace_of_smp_run_has_every_cpu_ipis_and_offsets(kernel, tmp_path):
    """A gdb capture of a 4-CPU run: a ring per CPU, TSC offsets in the file, IPIs and wake-ups
    across CPUs, and per-CPU timestamps that never go backwards."""
    import osvtrace as ot

    out = tmp_path / "smp.osvt"
    r = osvtrace("record", "--via", "gdb", "-o", str(out), "--smp", "4", "--accel", "tcg", "--trace", "sched_*,thread_*",
                 "--tracebuf", "4M", "--no-build", "--kernel", str(kernel), "mutex", "--threads", "8",
                 "--mutexes", "2", "--iterations", "2000", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    t = ot.open(out)
    assert t.ncpus == 4 and len(t.meta.tsc_offset) == 4
    ev = t.events
    cat = t.catalog
    per_cpu = np.bincount(ev.cpu, minlength=4)
    assert (per_cpu > 0).all(), per_cpu
    ipi_idx, ipi = t.args("sched_ipi")
    assert len(ipi_idx) > 0
    assert (ipi["cpu"] != ev.cpu[ipi_idx]).all()  # an IPI goes to another CPU
    assert set(ipi["vector"].tolist()) == {0xF1}
    wake_idx, wake = t.args("sched_wake")
    assert (wake["cpu"] != ev.cpu[wake_idx]).any()  # some wake-ups cross CPUs
    for c in range(4):
        times = ev.time[ev.cpu == c]
        assert (np.diff(times) >= 0).all(), f"CPU {c} timestamps go backwards"
        assert t.loss[c].reordered == 0
    # every switch names a thread that exists
    sw_idx, sw = t.args("sched_switch")
    assert set(sw["next"].tolist()) <= set(t.threads)


PASSES = 1000


def _remote_wakes_and_ipis(kernel: Path, tmp_path: Path, extra: list[str]) -> tuple[int, int]:
    """pingpong's `idle` mode (ping pinned to CPU 0, pong to CPU 1, each waker waits until the
    other CPU is idle: polling, or halted), streamed: (ping's and pong's wake-ups of each other,
    the wake-up IPIs they sent). Other threads' wake-ups (the trace drain's) are left out."""
    import osvtrace
    from osvtrace.capture import recorder

    cfg = VmConfig("pingpong", (str(PASSES), "idle"), kernel=kernel, smp=2, accel="tcg", trace="sched_wake,sched_ipi",
                   extra_cmdline=extra)
    out = tmp_path / f"pp{len(extra)}.osvt"
    res = recorder.record(cfg, out)
    assert res.stop == "app-exit" and res.outcome.app_status == 0, res.console[-2000:]
    m = re.search(r"pingpong: waited for an idle CPU (\d+) times, gave up (\d+)", res.console)
    assert m and int(m[1]) == 2 * PASSES, res.console[-2000:]
    print(f"{extra}: the other CPU was not idle within 1 s {m[2]} times of {m[1]}")
    t = osvtrace.open(out)
    players = [tid for tid, name in t.threads.items() if name in ("ping", "pong")]
    assert len(players) == 2, t.threads
    idx, a = t.args("sched_wake")
    by_player = np.isin(t.events.tid[idx], players) & np.isin(a["tid"], players)
    remote = int((by_player & (a["cpu"] != t.events.cpu[idx])).sum())
    assert remote == int(by_player.sum())  # pinned to two CPUs: each wake-up crosses
    idx, a = t.args("sched_ipi")
    return remote, int(((a["vector"] == 0xF1) & np.isin(t.events.tid[idx], players)).sum())


def test_an_idle_cpu_polling_its_queue_is_woken_without_an_ipi(kernel, tmp_path):
    # Left to timing this was luck: the woken CPU had to be polling when the wake-up came, and
    # on a loaded 2-core host a vCPU is often descheduled past its poll window or still on its
    # way to the poll (IPIs for 33-86% of remote wake-ups with idle_poll=1000, and ping and
    # pong on one CPU for most of a run: 262 remote wake-ups of 10,000). Now pingpong `idle`
    # wakes only a CPU seen idle, and polls last 1 s: every wake-up finds its CPU polling.
    remote, ipis = _remote_wakes_and_ipis(kernel, tmp_path, ["idle_poll=1000000"])
    # every pass but the first (pong may not have started yet) and the last (ping has ended)
    assert remote >= 2 * PASSES - 2, remote
    # An IPI only where the woken CPU stopped polling between the waker's look and its push
    # (another thread's timer woke it) or saw the push before the waker looked at `polling`
    # (the Dekker pair in push_remote): 1-2.5% measured on a host at load 13.
    assert ipis < remote * 0.2, (remote, ipis)
    print(f"polling: {ipis} IPIs for {remote} remote wake-ups")
    remote0, ipis0 = _remote_wakes_and_ipis(kernel, tmp_path, ["idle_poll=0"])
    assert remote0 >= 2 * PASSES - 2, remote0
    assert ipis0 > remote0 * 0.9, (remote0, ipis0)  # no polling: each wake-up of a halted CPU is an IPI
    print(f"halting: {ipis0} IPIs for {remote0} remote wake-ups")


def test_a_bad_idle_poll_is_refused(kernel):
    b = boot(kernel, "hello")
    assert b.app_status == 0
    cfg = VmConfig("hello", (), kernel=kernel, accel="tcg", extra_cmdline=["idle_poll=x"])
    r = subprocess.run(qemu.qemu_command(cfg), capture_output=True, timeout=60)
    assert b"cmdline: bad idle_poll 'x'" in r.stdout + r.stderr and qemu.decode_exit(r.returncode).app_status != 0
