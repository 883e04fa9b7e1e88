"""The lock-free mutex: uncontended lock+unlock and contended hand-off latency (unlock to the
waiter running with the mutex).

Instructions come from the host build of the very same algorithm (kernel/lib/lfmutex.hh in
tests/native/mutex_host.cc) under callgrind, which counts repeatably; the hand-off count leaves
out the platform's sleep and wake-up (host: a pthread condvar; guest: the scheduler). Cycles
come from the kernel's `mutexbench` app (in-guest TSC ticks, CPUs' measured offsets applied)
with 2 and 4 vCPUs under both TCG modes: single-threaded (all vCPUs on one host thread, cheap
cross-CPU wake-ups) and multi-threaded (one host thread per vCPU; a halted vCPU is woken by
the host scheduler). Under TCG these are emulated-time figures: compare ratios within a run.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from tests.support.native import NATIVE, ROOT, build

HOST_N = 100_000
GUEST_PAIRS = 200_000
GUEST_HANDOFFS = 5_000


def _inclusive(ann: str, name: str) -> int:
    m = re.search(r"^\s*([\d,]+) \([\d. %]+\)\s+.*?" + re.escape(name), ann, re.M)
    if not m:
        raise RuntimeError(f"callgrind_annotate shows no {name}")
    return int(m.group(1).replace(",", ""))


def host_instructions() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        # -g0: with debug info callgrind charges inlined code to the inlined functions
        exe = build(NATIVE / "mutex_host.cc", Path(d) / "mutex_host", "-std=c++20", f"-I{ROOT / 'kernel'}",
                    "-fno-pie", "-no-pie", "-g0")
        out = {}
        for mode, n, collect in (("uncontended", HOST_N, "*bench_uncontended*"),
                                 ("handoff", HOST_N // 5, "*bench_handoff_side*")):
            cg = Path(d) / f"{mode}.cg"
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}", f"--toggle-collect={collect}",
                            str(exe), mode, str(n)], check=True, capture_output=True, timeout=600)
            ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(cg)], check=True, capture_output=True,
                                 text=True).stdout
            algo = _inclusive(ann, "::lock()") + _inclusive(ann, "::unlock()")
            if mode == "handoff":
                algo -= _inclusive(ann, "host_platform::wait_flag") + _inclusive(ann, "host_platform::wake")
            out[mode] = algo / n
        return out


def mutexbench(smp: int, tcg: str, *args: str) -> dict[str, str]:
    from osvtrace.vm import qemu
    from osvtrace.vm.qemu import VmConfig

    kernel = ROOT / "build" / "kernel.elf"
    cfg = VmConfig("mutexbench", args, kernel=kernel, smp=smp, accel="tcg")
    cmd = qemu.qemu_command(cfg)
    cmd[cmd.index("-accel") + 1] = f"tcg,thread={tcg}"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("mutexbench: ")), None)
    if line is None or qemu.decode_exit(r.returncode).app_status != 0:
        raise RuntimeError(f"mutexbench {' '.join(args)} failed (exit {r.returncode}): {r.stdout[-500:]}")
    return dict(re.findall(r"(\w+)=(\S+)", line))


def run() -> list[dict]:
    from osvtrace.vm import kernel_build

    kernel_build.build(quiet=True)
    host = host_instructions()
    rows = [
        {"name": "mutex uncontended lock+unlock, host build", "value": f"{host['uncontended']:.0f}",
         "unit": "instructions", "target": "", "ok": None,
         "note": "callgrind, lock() + unlock() inclusive; the kernel adds 2 per disabled tracepoint (2 of them)"},
        {"name": "mutex hand-off, host build", "value": f"{host['handoff']:.0f}", "unit": "instructions",
         "target": "", "ok": None,
         "note": "callgrind, per hand-off: waiter's lock() + holder's unlock(), without the platform's sleep/wake"},
    ]
    for tcg in ("single", "multi"):
        for smp in (2, 4):
            u = mutexbench(smp, tcg, "uncontended", str(GUEST_PAIRS))
            h = mutexbench(smp, tcg, "handoff", str(GUEST_HANDOFFS))
            ghz = int(h["tsc_hz"]) / 1e9
            rows.append({"name": f"mutex uncontended lock+unlock, {smp} vCPUs, tcg thread={tcg}",
                         "value": u["ticks"], "unit": "cycles", "target": "", "ok": None,
                         "note": f"in-guest TSC, {GUEST_PAIRS} pairs, tracing off"})
            rows.append({"name": f"mutex hand-off latency cross-CPU, {smp} vCPUs, tcg thread={tcg}",
                         "value": h["median"], "unit": "cycles", "target": "", "ok": None,
                         "note": f"unlock to waiter running, median of {h['n']} (min {h['min']}, p90 {h['p90']}; "
                                 f"{int(h['median']) / ghz / 1000:.1f} us at {ghz:.2f} GHz); waiter asleep on an "
                                 "idle vCPU"})
        h = mutexbench(2, tcg, "handoff", str(GUEST_HANDOFFS), "--same-cpu")
        rows.append({"name": f"mutex hand-off latency same CPU, 2 vCPUs, tcg thread={tcg}", "value": h["median"],
                     "unit": "cycles", "target": "", "ok": None,
                     "note": f"unlock to waiter running incl. a context switch, median of {h['n']} (min {h['min']})"})
    return rows
