"""The osv commands on real OSv beside OSv's own scripts/loader.py, in one gdb session on one
stop: OSv (-smp 2, TCG) running `/mutexnet 400000 4`, interrupted while the four threads
contend for big_lock (tests/support/osv.py boots it; the OSv build is tests' cache).

- `osv info threads`: first call of the session (ours first, loader.py second) and the
  median of three warm calls each. loader.py's figure is `osv_info_threads.invoke`.
- `osv trace 20` (ours: both 2 MiB buffers in one memsave each, records walked) beside
  loader.py's `osv trace save` (every record through gdb).
- `osv memory` beside loader.py's (which walks every vma).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from tests.support.osv import OsvVm, build, osv_src

APP = "/mutexnet 400000 4"


def _time(f: Callable[[], str]) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def _row(name: str, ours: float, peer: float, note: str = "") -> dict:
    return {"name": name, "value": f"{ours:.2f}", "unit": "s", "ours": ours, "peer": peer,
            "peer_name": "OSv scripts/loader.py", "better": "lower", "ok": None, "note": note}


def run() -> list[dict]:
    if osv_src() is None:
        return [{"name": "OSv: gdb commands", "value": "not measured", "unit": "", "ok": None,
                 "note": "no OSv source (../shared/osv or $OSV_SRC)"}]
    tree = build()  # once per machine: about 200 s on 2 idle cores
    with OsvVm(tree, APP) as vm, tempfile.TemporaryDirectory() as tmp:
        vm.gdb.continue_()
        vm.console_until("Booted up", timeout=180)
        time.sleep(1.5)
        vm.gdb.interrupt(30)
        ours = lambda: vm.gdb.cli("osv info threads", 300)  # noqa: E731
        theirs = lambda: vm.loader_py("osv_info_threads")  # noqa: E731
        first_ours, first_theirs = _time(ours), _time(theirs)
        warm_ours = statistics.median(_time(ours) for _ in range(3))
        warm_theirs = statistics.median(_time(theirs) for _ in range(3))
        trace_ours = _time(lambda: vm.gdb.cli("osv trace 20", 300))
        trace_theirs = _time(lambda: vm.loader_py("osv_trace_save", str(Path(tmp) / "tracefile"), timeout=600))
        mem_ours = _time(lambda: vm.gdb.cli("osv memory", 60))
        mem_theirs = _time(lambda: vm.loader_py("osv_memory"))
        return [
            _row("OSv: osv info threads, first in the session", first_ours, first_theirs,
                 "ours ran first: it also adds the app objects' symbols and expands their DWARF"),
            _row("OSv: osv info threads, warm (median of 3)", warm_ours, warm_theirs),
            _row("OSv: osv trace 20 vs loader.py osv trace save", trace_ours, trace_theirs,
                 "both read every record of both 2 MiB buffers"),
            _row("OSv: osv memory", mem_ours, mem_theirs),
        ]


if __name__ == "__main__":
    for r in run():
        print(f"{r['name']:50s} ours {r['ours']:7.3f} s   loader.py {r['peer']:7.3f} s   {r['note']}")
