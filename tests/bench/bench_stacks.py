"""What a record's stack costs (issue 22): instructions on the host build of the kernel's
writer (callgrind, repeatable) and cycles inside the guest (`stacks bench`, emulated time),
per record with its stack against the same record without, and per frame of the walk.

LTTng-UST, the usual peer, has no call-stack context for user-space events (only its kernel
tracer has callstack-user), so there is no side-by-side figure here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.native import NATIVE, ROOT, build

FRAMES_APART = 8  # run_*8 emit from 8 frames deeper than run_*0


def callgrind_costs(n: int = 20_000) -> tuple[dict[str, float], int]:
    """Inclusive instructions per iteration of each run_* function of stack_cost.cc, and the
    depth of the deeper stacks."""
    with tempfile.TemporaryDirectory() as d:
        exe = build(NATIVE / "stack_cost.cc", Path(d) / "stack_cost", "-fno-pie", "-no-pie", "-g0",
                    "-fno-omit-frame-pointer")
        out = Path(d) / "cg.out"
        r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(exe), str(n)],
                           check=True, capture_output=True, text=True)
        depth = int(re.search(r"depth8 (\d+)", r.stdout).group(1))
        ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(out)], check=True, capture_output=True,
                             text=True).stdout
    costs = {}
    for name in ("run_off0", "run_on0", "run_off8", "run_on8"):
        m = re.search(r"^\s*([\d,]+) .*?\b" + name + r"\b", ann, re.M)
        if not m:
            raise RuntimeError(f"callgrind_annotate shows no {name}")
        costs[name] = int(m.group(1).replace(",", "")) / n
    return costs, depth


def guest_cycles(runs: int = 3) -> dict[str, float]:
    """The guest's figures, the lowest of `runs` boots each (TCG on a shared host: the
    lowest is the one the host disturbed least)."""
    got = [_guest_once() for _ in range(runs)]
    return {k: min(g[k] for g in got) for k in got[0]}


def _guest_once() -> dict[str, float]:
    r = subprocess.run([sys.executable, "-m", "osvtrace.cli.main", "run", "--accel", "tcg", "stacks", "bench"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    m = re.search(r"stacks: bench off ([\d.]+) on ([\d.]+) stack ([\d.]+) depth (\d+) deeper ([\d.]+) depth (\d+)",
                  r.stdout)
    if not m:
        raise RuntimeError(f"stacks bench printed no figures (exit {r.returncode}): {r.stdout[-300:]} {r.stderr[-300:]}")
    g = m.groups()
    return {"off": float(g[0]), "on": float(g[1]), "stack": float(g[2]), "depth": int(g[3]),
            "deeper": float(g[4]), "depth2": int(g[5])}


def run() -> list[dict]:
    c, depth8 = callgrind_costs()
    rec0 = c["run_on0"] - c["run_off0"]
    rec8 = c["run_on8"] - c["run_off8"]
    per_frame = (rec8 - rec0) / FRAMES_APART
    rows = [
        {"name": "stack of a record, host build", "value": f"{rec0:.0f}", "unit": "instructions", "target": "",
         "ok": None, "note": f"callgrind; trace_marker with its stack minus without, {depth8 - FRAMES_APART} frames"},
        {"name": "stack, per frame walked, host build", "value": f"{per_frame:.1f}", "unit": "instructions",
         "target": "", "ok": None, "note": f"callgrind; ({depth8} frames - {depth8 - FRAMES_APART} frames) / 8"},
    ]
    g = guest_cycles()
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    per_frame_g = (g["deeper"] - g["stack"]) / max(1, g["depth2"] - g["depth"])
    rows += [
        {"name": "record without stack, in guest", "value": f"{g['on']:.1f}", "unit": "cycles", "target": "",
         "ok": None, "note": f"stacks bench under TCG (emulated time), lowest of 3 boots, {load}: trace_marker enabled"},
        {"name": "record with stack, in guest", "value": f"{g['stack']:.1f}", "unit": "cycles", "target": "",
         "ok": None, "note": f"the same record carrying its stack, {g['depth']} frames"},
        {"name": "stack, per frame walked, in guest", "value": f"{per_frame_g:.1f}", "unit": "cycles",
         "target": "", "ok": None, "note": f"({g['depth2']} frames - {g['depth']} frames), TCG"},
        {"name": "disabled tracepoint, in guest (for scale)", "value": f"{g['off']:.1f}", "unit": "cycles",
         "target": "", "ok": None, "note": "the same loop; its flag byte says off, on or on with the stack"},
    ]
    return rows
