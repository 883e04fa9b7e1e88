"""Getting flight-recorder rings out of a guest: shared-RAM capture against a gdb snapshot.

One guest (tpstorm, 2 vCPUs, TCG, 2 x 32 MiB rings filled with trace_marker records)
whose RAM lives in a /dev/shm file, with gdb attached and stopped in osvtrace_app_exit.
On those same rings, alternating for a few rounds:

- gdb snapshot: `osv trace save FILE` (gdb/osv.py: bulk reads through QEMU's pmemsave,
  then the .osvt written), the route a person takes with a live or hung guest;
- shared-RAM capture: what `osvtrace record --via shm` (and `osvtrace recover`) does once
  QEMU has ended: read the rings out of the RAM file and write the .osvt
  (osvtrace.capture.recovery.write_from_ram).

MiB/s = ring bytes saved per second of the command, best of the rounds. Both must save
the same number of slots. Issue 11 asks for the figures, no target.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from pathlib import Path

from osvtrace.capture import shm as shmcapture
from osvtrace.capture.recovery import write_from_ram
from osvtrace.vm import kernel_build
from tests.support.gdb import Booted

RING_MB = 32
MEM_MB = 512
SLOT = 32
ROUNDS = 3


def run() -> list[dict]:
    kernel = kernel_build.build(quiet=True)
    ram = shmcapture.SHM_DIR / f"osvtrace-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}.ram"
    load0 = os.getloadavg()[0]
    gdb_s: list[float] = []
    shm_s: list[float] = []
    try:
        with Booted(kernel, "tpstorm", "--seconds", "3", smp=2, mem_mb=MEM_MB, trace="trace_marker",
                    tracebuf=f"{RING_MB}M", extra_args=shmcapture.ram_args(ram, MEM_MB), timeout=120) as b, \
                tempfile.TemporaryDirectory(prefix="osvtrace-bench-") as d:
            b.run_to("osvtrace_app_exit", timeout=300)
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                out = b.gdb.cli(f"osv trace save {Path(d) / 'gdb.osvt'}", timeout=120)
                gdb_s.append(time.perf_counter() - t0)
                m = re.search(r"saved ([\d,]+) slots", out)
                gdb_slots = int(m[1].replace(",", "")) if m else 0
                t0 = time.perf_counter()
                snap, _ = write_from_ram(ram, kernel, Path(d) / "shm.osvt", capture="shm", status="bench")
                shm_s.append(time.perf_counter() - t0)
                if snap.slots != gdb_slots:
                    raise RuntimeError(f"gdb saved {gdb_slots:,} slots, the RAM file gave {snap.slots:,}")
    finally:
        ram.unlink(missing_ok=True)
    mib = gdb_slots * SLOT / 2**20
    if mib < 2 * RING_MB * 0.99:
        raise RuntimeError(f"the rings were not full: {mib:.1f} MiB")
    gdb_rate, shm_rate = mib / min(gdb_s), mib / min(shm_s)
    note = (f"2 CPUs x {RING_MB} MiB rings, {gdb_slots:,} slots, .osvt written; best of {ROUNDS} "
            f"(gdb {min(gdb_s):.3f} s, RAM file {min(shm_s):.3f} s); load average {load0:.1f}")
    return [
        {"name": f"shared-RAM capture (record --via shm), {mib:.0f} MiB of rings", "value": f"{shm_rate:.0f}",
         "unit": "MiB/s", "ours": round(shm_rate, 1), "peer": round(gdb_rate, 1),
         "peer_name": "gdb snapshot (osv trace save)", "ratio": round(shm_rate / gdb_rate, 2), "better": "higher",
         "target": "", "ok": None, "note": f"rings read from the RAM file in /dev/shm; {note}"},
        {"name": f"gdb snapshot (osv trace save), {mib:.0f} MiB of rings", "value": f"{gdb_rate:.0f}",
         "unit": "MiB/s", "target": "", "ok": None, "note": f"pmemsave through QEMU's monitor; {note}"},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
