"""Memory per viewer request: absurd requests against a real server over a big trace.

    python -m tests.fuzz.viewer_load [--events 1000000] [--requests 1000]

A synthetic trace is written and served on loopback; a mix of absurd requests (every lane
at 8192 px over more than the whole trace, ranges reversed, NaN, 1e300, 10^9 px, 60 KB
lane lists, huge tolerances and rows, windowed reports, unknown endpoints, traversal) is
sent over HTTP. Measured: the server process' resident memory growth across the requests
and its peak above the start (VmHWM, reset first), and per request, in-process, the peak
of Python and numpy allocations (tracemalloc) while the same answers are built.
"""

from __future__ import annotations

import argparse
import http.client
import random
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any
from urllib.parse import quote

MIB = 1 << 20


def _status(field: str) -> int:
    """A VmRSS/VmHWM figure of this process in bytes."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


def absurd_requests(api: Any, n: int, seed: int = 1) -> list[str]:
    """Each form of request once, then random ones up to n: mostly absurd, some merely big."""
    rng = random.Random(seed)
    t0, t1 = api.t_first, api.t_last
    lo, hi = api.t_lo, api.t_hi
    all_lanes = ",".join(ln.id for ln in api.lanes.lanes)
    some = [ln.id for ln in api.lanes.lanes]
    forms = [
        lambda: f"/api/view?t0={lo}&t1={hi}&px=8192&lanes={quote(all_lanes)}",  # everything, widest
        lambda: f"/api/view?t0={t0}&t1={t1}&px=8192",
        lambda: f"/api/view?t0={t1}&t1={t0}&px=100",  # reversed
        lambda: f"/api/view?t0=nan&t1={t1}&px=100",
        lambda: f"/api/view?t0={t0}&t1=1e300&px=100",
        lambda: f"/api/view?t0={t0}&t1={10**300}&px=100",
        lambda: f"/api/view?t0={t0}&t1={t1}&px={10**9}",
        lambda: f"/api/view?t0={t0}&t1={t1}&px=-800",
        lambda: f"/api/view?t0={t0}&t1={t1}&px=800&lanes=" + quote(",".join(["cpu:0"] * 2048)),
        lambda: f"/api/view?t0={t0}&t1={t1}&px=800&lanes=" + "x" * 60000,
        lambda: f"/api/item?lane={rng.choice(some)}&t={rng.randint(lo, hi)}&tol={hi - lo}",
        lambda: f"/api/item?lane={rng.choice(some)}&row={rng.randint(0, 2**62)}",
        lambda: f"/api/find?lane={rng.choice(some)}&t={rng.randint(lo, hi)}&dir=prev",
        lambda: f"/api/arrow?kind=handoff&row={10**30}",
        lambda: f"/api/report?name={rng.choice(['sched', 'mutex', 'cpu', 'wakeup'])}&t0={rng.randint(t0, t1)}&t1={t1}",
        lambda: f"/api/report?name=sched&t0={t1}&t1={t0}",
        lambda: "/api/" + "a" * 1000,
        lambda: "/../../../etc/passwd",
        lambda: "/api/view?" + "&".join(f"x{i}=1" for i in range(200)),
    ]
    return [f() for f in forms] + [rng.choice(forms)() for _ in range(max(0, n - len(forms)))]


def measure(events: int = 1_000_000, requests: int = 1000, *, trace: Path | None = None) -> dict[str, float]:
    """Serve a synthetic trace of `events` and send `requests` absurd requests; figures in bytes."""
    from osvtrace.format import synth
    from osvtrace.viewer import Viewer
    from osvtrace.viewer.server import ViewerServer

    with tempfile.TemporaryDirectory() as d:
        path = trace or Path(d) / "big.osvt"
        if trace is None:
            synth.generate(path, events=events, cpus=4, threads_per_cpu=8)
        v = Viewer.open(path)
        srv = ViewerServer(v.api, "127.0.0.1", 0)
        srv.start()
        try:
            targets = absurd_requests(v.api, requests)
            statuses: dict[int, int] = {}
            biggest = 0

            def send(target: str) -> None:
                nonlocal biggest
                c = http.client.HTTPConnection(*srv.server_address[:2], timeout=60)
                c.request("GET", target)
                r = c.getresponse()
                body = r.read()
                c.close()
                statuses[r.status] = statuses.get(r.status, 0) + 1
                biggest = max(biggest, len(body))

            for target in absurd_requests(v.api, 0, seed=2) * 2:  # warm up: each form once builds what it caches
                send(target)
            statuses.clear()
            rss0 = _status("VmRSS")
            _reset_peak()
            clock = time.monotonic()
            for target in targets:
                send(target)
            seconds = time.monotonic() - clock
            rss1, hwm = _status("VmRSS"), _status("VmHWM")
            # the same answers built in-process, one at a time, under tracemalloc
            tracemalloc.start()
            per_request = 0
            for target in targets[: min(len(targets), 300)]:
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
                srv.answer(target, "127.0.0.1")
                per_request = max(per_request, tracemalloc.get_traced_memory()[1] - base)
            tracemalloc.stop()
        finally:
            srv.shutdown()
            srv.server_close()
    return {"events": len(v.api.trace), "requests": requests, "seconds": seconds, "rss_start": rss0,
            "rss_growth": rss1 - rss0, "peak_above_start": hwm - rss0, "per_request_peak": per_request,
            "largest_answer": biggest, "statuses": statuses}  # type: ignore[dict-item]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.viewer_load", description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=1000)
    a = ap.parse_args(argv)
    r = measure(a.events, a.requests)
    print(f"viewer: {r['requests']:,} absurd requests on {r['events']:,} events in {r['seconds']:.1f} s "
          f"(statuses {dict(sorted(r['statuses'].items()))}): RSS {r['rss_start'] / MIB:.0f} MiB at the start, "
          f"{r['rss_growth'] / MIB:+.1f} MiB after, peak {r['peak_above_start'] / MIB:+.1f} MiB above the start; "
          f"largest answer {r['largest_answer'] / MIB:.2f} MiB; per request at most "
          f"{r['per_request_peak'] / MIB:.1f} MiB allocated (tracemalloc)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
