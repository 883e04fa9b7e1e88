"""The kernel debugger's speed: real gdb (MI) against the real kernel in QEMU (TCG).

- `osv info threads` with 1,000 threads: gdbcheck --sleepers 1000 stopped in
  gdbcheck_stop (1,009 threads); the first call (which also builds the index of static
  objects once per session) and the median of the next ones. Target <= 1 s.
- `osv trace save` of 64 MiB of rings: tpstorm fills two 32 MiB rings (2 CPUs) with
  trace_marker records, stopped in osvtrace_app_exit; the save reads every slot through
  pmemsave and writes the .osvt. Target <= 3 s.
Beside them, informational figures for the other commands on the same states.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path

from osvtrace.vm import kernel_build
from tests.support.gdb import Booted

THREADS_TARGET_S = 1.0
SAVE_TARGET_S = 3.0
RING_MB = 32
SLOT = 32


def timed(b: Booted, command: str, timeout: float = 120) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = b.gdb.cli(command, timeout=timeout)
    return time.perf_counter() - t0, out


def row(name: str, seconds: float, target: str = "", ok: bool | None = None, note: str = "") -> dict:
    return {"name": name, "value": round(seconds * 1000, 1), "unit": "ms", "target": target, "ok": ok, "note": note}


def threads_rows(kernel: Path) -> list[dict]:
    rows = []
    with Booted(kernel, "gdbcheck", "--sleepers", "1000", smp=2, mem_mb=512, timeout=120) as b:
        b.run_to("gdbcheck_stop", timeout=300)
        first, out = timed(b, "osv info threads")
        n = len(out.strip().splitlines()) - 1
        if n < 1000:
            raise RuntimeError(f"osv info threads listed {n} threads, expected 1,000 or more:\n{out[:2000]}")
        warm = [timed(b, "osv info threads")[0] for _ in range(5)]
        med = statistics.median(warm)
        rows.append(row(f"osv info threads, {n} threads (first call)", first, f"<= {THREADS_TARGET_S:g} s",
                        first <= THREADS_TARGET_S, "includes the one-time index of static objects"))
        rows.append(row(f"osv info threads, {n} threads", med, f"<= {THREADS_TARGET_S:g} s", med <= THREADS_TARGET_S,
                        f"median of 5 (min {min(warm) * 1000:.1f} ms, max {max(warm) * 1000:.1f} ms); "
                        "2 vCPUs, TCG"))
        for cmd, note in (("osv runqueue", ""), ("osv mutex all", ""), ("osv mutex gdbcheck::held", ""),
                          ("osv memory", ""), ("osv thread 500", "loads a saved context"),
                          ("osv thread apply all bt 1", f"{n} threads")):
            t, _ = timed(b, cmd)
            rows.append(row(f"{cmd} ({n} threads)", t, note=note))
        b.cli("osv thread restore -q")
    return rows


def save_rows(kernel: Path) -> list[dict]:
    rows = []
    with Booted(kernel, "tpstorm", "--seconds", "3", smp=2, mem_mb=512, trace="trace_marker",
                tracebuf=f"{RING_MB}M", timeout=120) as b:
        b.run_to("osvtrace_app_exit", timeout=300)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "t.osvt"
            t, out = timed(b, f"osv trace save {path}")
            m = re.search(r"saved ([\d,]+) slots", out)
            slots = int(m[1].replace(",", "")) if m else 0
            mib = slots * SLOT / 2**20
            if mib < 2 * RING_MB * 0.99:
                raise RuntimeError(f"the rings were not full: saved {mib:.1f} MiB ({out.strip()})")
            size = path.stat().st_size
        rows.append(row(f"osv trace save, {mib:.0f} MiB of rings", t, f"<= {SAVE_TARGET_S:g} s", t <= SAVE_TARGET_S,
                        f"{mib / t:.0f} MiB/s; 2 CPUs x {RING_MB} MiB through pmemsave, {size / 2**20:.0f} MiB "
                        ".osvt written"))
        for cmd in ("osv trace 20", "osv trace 20 --tp trace_marker --cpu 1", "osv trace status"):
            t, _ = timed(b, cmd)
            rows.append(row(f"{cmd} ({2 * RING_MB} MiB of rings)", t,
                            note="decodes the whole rings" if cmd.endswith("status") else "reads the newest slots"))
    return rows


def run() -> list[dict]:
    kernel = kernel_build.build(quiet=True)
    return threads_rows(kernel) + save_rows(kernel)


if __name__ == "__main__":
    for r in run():
        print(f"{r['name']:<60} {r['value']:>9} {r['unit']:<3} {r['target']:<10} {r['ok']} {r['note']}")
