"""Debian's memcached (the host's unmodified binary) on real OSv, 2 vCPUs under TCG, driven
over QEMU's user-mode network by `osvtrace load memcache` (gets and 10 % sets on 1,000 keys,
32-byte values, 4 client sockets): the highest lossless rate, stepped up in one VM until a
step loses more than 0.1 % of its requests, and the most replies per second any step got.
No tracepoint is on (the baseline a recording is compared with: docs/osv.md).

The image is tests/support/osv_apps/memcached on the shared OSv build's kernel
(tests/support/osv_app_image.py). Everything here (the guest's two vCPUs, QEMU's I/O
thread, slirp and the load generator) shares the host's 2 cores, with other work beside it:
the figure is this machine's, not OSv's.
"""

from __future__ import annotations

RATES = (250, 500, 750, 1000, 1500, 2000, 3000, 4000)
STEP_SECONDS = 3.0
MAX_LOSS = 0.001


def run() -> list[dict]:
    from osvtrace.loadgen import load
    from tests.bench.bench_net import _loadavg
    from tests.support.osv import build, osv_src
    from tests.support.osv_app_image import app_image, cache_dir
    from tests.support.osv_memcached import PlainOsvMemcached

    name = "memcached on OSv (2 vCPUs, TCG): highest lossless rate"
    if osv_src() is None:
        return [{"name": name, "value": "not measured", "unit": "", "ok": None,
                 "note": "no OSv source (../shared/osv or $OSV_SRC)"}]
    image = app_image("memcached", build(), cache_dir())
    steps = []
    with PlainOsvMemcached(image) as m:
        version = m.wait_ready()
        for i, rate in enumerate(RATES):
            r = load.run("memcache", m.target, rate=rate, duration=STEP_SECONDS, conns=4, drain=1.0,
                         prefill=i == 0)
            steps.append((rate, r))
            if r.bad or r.lost > MAX_LOSS * r.sent:
                break
    clean = [(rate, r) for rate, r in steps if not r.bad and r.lost <= MAX_LOSS * r.sent]
    best = max((r.answered / r.seconds for _, r in steps), default=0.0)
    top = clean[-1] if clean else None
    trail = ", ".join(f"{rate}/s: {r.lost}/{r.sent} lost" for rate, r in steps)
    note = (f"{version}; {STEP_SECONDS:g} s steps in one VM ({trail}); p50/p99 at that rate "
            f"{top[1].percentiles()['p50'] / 1e3:.1f}/{top[1].percentiles()['p99'] / 1e3:.1f} ms host-measured; "
            f"host load average {_loadavg()}" if top else f"{version}; every step lost ({trail})")
    return [
        {"name": name, "value": top[0] if top else 0, "unit": "requests/s", "ok": None, "note": note},
        {"name": "memcached on OSv (2 vCPUs, TCG): most replies/s in a step", "value": round(best),
         "unit": "replies/s", "ok": None, "note": "the same steps: replies / (step + drain)"},
    ]
