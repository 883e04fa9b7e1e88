"""OSv's own REST dump (`record --kernel osv --via rest`: GET /trace/buffers through QEMU's user
network) beside osvtrace's gdb snapshot (`--via gdb`: one memsave per CPU, the dump written on
the host), the same app on the same image, one recording each: `/mutexnet OSV_REST_ITERS 2`
(default 20000) on 2 vCPUs, so both CPUs' rings (4 MiB in all) are full at the app's end.
Needs the REST image (tests/support/osv.py build_rest: REST=1 build.sh, beside the plain build).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.osv import build_rest, osv_src

ITERS = int(os.environ.get("OSV_REST_ITERS", "20000"))


def _record(image: Path, via: str, out: Path) -> dict:
    r = subprocess.run([sys.executable, "-m", "osvtrace.cli.main", "record", "--kernel", "osv", "--via", via,
                        "--image", str(image), "--smp", "2", "--json", "-o", str(out), "/mutexnet", str(ITERS), "2"],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode:
        raise RuntimeError(f"record --via {via} failed: {r.stderr[-500:]}")
    return json.loads(r.stdout)


def run() -> list[dict]:
    if osv_src() is None:
        return [{"name": "OSv: REST dump", "value": "not measured", "unit": "", "ok": None,
                 "note": "no OSv source (../shared/osv or $OSV_SRC)"}]
    image = build_rest() / "build" / "release" / "usr.img"
    with tempfile.TemporaryDirectory() as tmp:
        rest = _record(image, "rest", Path(tmp) / "rest.osvt")
        gdb = _record(image, "gdb", Path(tmp) / "gdb.osvt")
    load = os.getloadavg()[0]
    snap = gdb["snapshot_seconds"] + gdb["write_seconds"]
    note = (f"/mutexnet {ITERS} 2 on 2 vCPUs, full rings (4 MiB). REST: {rest['events']:,} records, "
            f"{rest['dump_bytes']:,}-byte dump, GET from request to the last byte on disk "
            f"({rest['dump_bytes'] / rest['fetch_seconds'] / 2**20:.2f} MiB/s), whole recording "
            f"{rest['seconds']:.1f} s; gdb: {gdb['events']:,} records, snapshot {gdb['snapshot_seconds']:.3f} s "
            f"(first of the session) + dump written on the host {gdb['write_seconds']:.3f} s, whole recording "
            f"{gdb['seconds']:.1f} s; one recording each; load average {load:.1f}")
    return [{"name": "OSv REST dump (record --via rest: GET /trace/buffers), 2 vCPUs, full rings",
             "value": f"{rest['fetch_seconds']:.2f}", "unit": "s", "ok": None, "note": note},
            {"name": "OSv gdb snapshot + dump on the host vs OSv's REST dump, 2 vCPUs, full rings",
             "value": f"{snap:.2f}", "unit": "s", "ours": snap, "peer": rest["fetch_seconds"],
             "peer_name": "OSv REST API (GET /trace/buffers)", "better": "lower", "ok": None,
             "note": "the same rings' size and app; see the row above"}]
