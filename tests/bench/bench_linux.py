"""Our kernel vs a Linux guest under the same QEMU: boot, thread ping-pong, contended mutex, UDP echo.

The Linux guest is Debian's kernel package booted by PVH (its vmlinux, as QEMU boots ours)
with a busybox-static initramfs and static C programs written to do what our apps do
(tests/bench/linux/). Both guests run from the same command line (osvtrace.vm.qemu's): same
QEMU, machine, -smp, -m and TCG threading mode, and one runner times both the same way.

- boot: host wall time from starting QEMU to the app's first line (ours: the kernel's
  `boot: app main`, Linux: a static `hello` exec'd by /init), median of BOOTS boots, on
  microvm and q35, 1 vCPU;
- ping-pong: two threads pass a token N times each way (ours: wait queues; Linux: a futex,
  and a pthread mutex + condvar), ns per pass from the guest's own clock;
- mutex: the same T threads, M mutexes, iterations, hold and think times (ours: the
  lock-free mutex; Linux: pthread_mutex), acquisitions/s from the guest's own clock;
- UDP echo on 1 vCPU and on 2 (multi-threaded TCG, a server thread per vCPU), driven by
  `osvtrace load udp` through QEMU's user network and the same hostfwd: the highest lossless
  rate (bench_net's steps and criterion) and host-measured round trips at a moderate rate.

Every row is a comparison (ours, peer, better, ratio: how many times better ours is, > 1: ours
better; for times Linux/ours, for rates ours/Linux). Ping-pong and mutex figures are medians of RUNS boots.
Under TCG in-guest times are emulated time; a 2-core host shared with other work makes
every figure noisy, so each row notes the host's load average.
"""

from __future__ import annotations

import os
import re
import statistics

from tests.bench import bench_net
from tests.bench.bench_net import (
    LATENCY_RATE,
    LATENCY_SECONDS,
    RATES,
    STEP_SECONDS,
    _load,
)
from tests.bench.linux import guest

# Debian packages the comparison needs on the host (tests/bench/__main__.py checks them first);
# static glibc (libc6-dev) is checked when the programs are built.
PEERS = {"qemu-system-x86": "qemu-system-x86_64", "gcc": "gcc", "apt": "apt-get", "dpkg": "dpkg-deb"}
BOOTS = 5
RUNS = 3
MEM_MB = 256
MACHINE = "microvm"
PINGPONG_N = 20_000
MUTEX_ARGS = ("--threads", "4", "--mutexes", "2", "--iterations", "20000", "--hold-ns", "200", "--think-ns", "1000")
# (vCPUs, TCG mode): one vCPU runs on one host thread either way; with two, single-threaded
# TCG makes cross-CPU wake-ups cheap and multi-threaded TCG gives real parallelism.
CPU_CONFIGS = ((1, "multi"), (2, "single"), (2, "multi"))
UDP_PORT = 7
UDP_CONFIGS = ((1, "multi"), (2, "multi"))  # (vCPUs, TCG mode); a server thread per vCPU
# bench_net's steps with two lower ones: Linux under TCG can lose at bench_net's first step.
UDP_RATES = (500, 1000) + RATES
LISTENING = b"listening on udp port"


class _Tally:
    """Hung Linux boots retried, for the notes."""

    retries = 0


def _load_avg() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _label(smp: int, tcg: str) -> str:
    return "1 vCPU" if smp == 1 else f"{smp} vCPUs, tcg thread={tcg}"


def _app(kind: str, app: str, args: tuple[str, ...], smp: int, tcg: str, machine: str = MACHINE) -> guest.Run:
    cfg = guest.config(kind, app, args, smp=smp, mem_mb=MEM_MB, machine=machine)
    r, hung = guest.run(cfg, tcg, timeout=300, boot_mark=guest.BOOT_MARKER[kind],
                        marks=(guest.APP_MARKER[kind],))
    _Tally.retries += hung
    if r.outcome.kind != "app" or r.outcome.app_status != 0:
        raise RuntimeError(f"{kind} {app} {' '.join(args)}: {r.outcome.describe()}; console:\n{r.console[-1500:]}")
    return r


# ---------------------------------------------------------------- boot

def boot_ms(kind: str, machine: str) -> list[float]:
    """Host ms from QEMU start to the app's first line, one per boot."""
    out = []
    for _ in range(BOOTS):
        r = _app(kind, "hello", (), 1, "multi", machine)
        out.append(r.marks[guest.APP_MARKER[kind]] * 1e3)
    return out


# ---------------------------------------------------------------- ping-pong and mutex

def pingpong_ns(kind: str, smp: int, tcg: str, mode: str = "") -> float:
    """ns per pass (one hand-off) by the guest's clock, median of RUNS boots."""
    per = []
    for _ in range(RUNS):
        if kind == "ours":
            r = _app("ours", "pingpong", (str(PINGPONG_N),), smp, tcg)
            m = re.search(r"pingpong: (\d+) passes each way, \d+ switches in (\d+)\.(\d+) ms", r.console)
            if not m:
                raise RuntimeError(f"no pingpong line: {r.console[-500:]}")
            ns = (int(m[2]) * 1000 + int(m[3])) * 1000
            per.append(ns / (2 * int(m[1])))
        else:
            r = _app("linux", "pingpong", (mode, str(PINGPONG_N)), smp, tcg)
            per.append(float(r.fields("pingpong:")["ns_per_pass"]))
    return statistics.median(per)


def mutex_rate(kind: str, smp: int, tcg: str) -> tuple[float, float]:
    """(acquisitions/s, % of acquisitions that found the mutex taken), medians of RUNS boots."""
    rates, contended = [], []
    for _ in range(RUNS):
        f = _app(kind, "mutex", MUTEX_ARGS, smp, tcg).fields("mutex:")
        if f.get("lost_updates") != "0":
            raise RuntimeError(f"{kind} mutex lost updates: {f}")
        rates.append(float(f["rate"].removesuffix("/s")))
        contended.append(100 * int(f["contended"]) / int(f["acquisitions"]))
    return statistics.median(rates), statistics.median(contended)


# ---------------------------------------------------------------- UDP echo

def udp_echo(kind: str, smp: int = 1, tcg: str = "multi") -> dict:
    """One boot of udp-echo with a server thread per vCPU: host round trips at LATENCY_RATE,
    then bench_net's open-loop steps up to the first that loses twice."""
    from tests.support.net import free_udp_port

    port = free_udp_port()
    cfg = guest.config(kind, "udp-echo", (str(UDP_PORT), "--threads", str(smp), "--idle-exit", "3000"), smp=smp,
                       mem_mb=MEM_MB, machine=MACHINE, net=True, hostfwd=(f"udp:{port}-:{UDP_PORT}",))
    for attempt in range(3):
        with guest.Guest(cfg, tcg, marks=(guest.BOOT_MARKER[kind], LISTENING)) as g:
            if not g.wait_mark(LISTENING, 60):
                if attempt < 2 and guest.BOOT_MARKER[kind] not in g.marks:
                    _Tally.retries += 1
                    continue  # a hung boot: try again
                raise RuntimeError(f"{kind} udp-echo never listened: {g.finish(0).console[-1500:]}")
            _load("udp", port, 500, 1.0)  # warm-up: ARP, the first packets' paths
            lat = _load("udp", port, LATENCY_RATE, LATENCY_SECONDS)
            best, peak, note = bench_net.step_up("udp", port, UDP_RATES, f"{kind} udp-echo")
            g.finish(60)
        return {"best": best, "peak": peak, "note": note, "lat": lat.percentiles(), "lat_lost": lat.lost}
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- rows

def _row(name: str, unit: str, ours: float, linux: float, better: str, note: str, peer: str) -> dict:
    """A comparison row in tests/bench/__main__.py's form: ours, peer, which way is better, ratio."""
    if better == "higher":
        ratio = ours / linux if linux else None
    else:
        ratio = linux / ours if ours else None
    way = "faster" if better == "lower" else "more"
    return {"name": name, "value": _fmt(ours), "unit": unit, "target": "", "ok": None, "ours": round(ours, 3),
            "peer": round(linux, 3), "peer_name": peer, "better": better,
            "ratio": None if ratio is None else round(ratio, 3),
            "note": f"{note}; ratio > 1: ours is {way} ({better} is better)"}


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"


def run() -> list[dict]:
    from osvtrace.vm import kernel_build

    kernel_build.build(quiet=True)
    guest.build()
    khz = guest.tsc_khz()
    release = guest.kernel_release()
    peer = f"Linux {release.split('-')[0]} guest"
    linux = f"Debian {release} booted by PVH, tsc_early_khz={khz}"
    rows = []

    for machine in ("microvm", "q35"):
        load0 = _load_avg()
        ours, lin = boot_ms("ours", machine), boot_ms("linux", machine)
        o, li = statistics.median(ours), statistics.median(lin)
        rows.append(_row(
            f"boot to app start, {machine}", "ms", o, li, "lower",
            f"host ms from QEMU start to the app's first line on the console, median of {BOOTS}: ours "
            f"{min(ours):.0f}-{max(ours):.0f}, Linux {min(lin):.0f}-{max(lin):.0f}; {linux}; 1 vCPU, -m {MEM_MB}, "
            f"TCG; host load {load0}-{_load_avg()}", peer))

    for smp, tcg in CPU_CONFIGS:
        load0 = _load_avg()
        ours = pingpong_ns("ours", smp, tcg)
        for mode, what in (("futex", "futex"), ("condvar", "pthread condvar")):
            lin = pingpong_ns("linux", smp, tcg, mode)
            rows.append(_row(
                f"thread ping-pong, {_label(smp, tcg)}: vs {what}", "ns/hand-off", ours, lin, "lower",
                f"median of {RUNS} boots each, {PINGPONG_N:,} passes each way, guest clock; ours: wait queues; "
                f"{MACHINE}, -m {MEM_MB}; host load {load0}-{_load_avg()}", f"{peer}, {what}"))

    for smp, tcg in CPU_CONFIGS:
        load0 = _load_avg()
        (ours, oc), (lin, lc) = mutex_rate("ours", smp, tcg), mutex_rate("linux", smp, tcg)
        rows.append(_row(
            f"contended mutex, {_label(smp, tcg)}", "acq/s", ours, lin, "higher",
            f"median of {RUNS} boots each, {' '.join(MUTEX_ARGS)}, guest clock; ours handed {oc:.0f}% of "
            f"acquisitions to a waiter (FIFO hand-off), pthread_mutex found {lc:.0f}% taken (it lets a running "
            f"thread barge in); {MACHINE}; host load {load0}-{_load_avg()}", f"{peer}, pthread_mutex"))

    for smp, tcg in UDP_CONFIGS:
        load0 = _load_avg()
        ours, lin = udp_echo("ours", smp, tcg), udp_echo("linux", smp, tcg)
        loads = f"host load {load0}-{_load_avg()}"
        where = "" if smp == 1 else f", {_label(smp, tcg)}"
        common = (f"udp-echo on {_label(smp, tcg)} with {smp} server thread{'s' * (smp > 1)}, {MACHINE}, QEMU user "
                  f"net + hostfwd, `osvtrace load udp` (16 client ports)")
        row = _row(f"UDP echo highest lossless rate{where}", "req/s", ours["best"], lin["best"], "higher",
                   f"{common}; open-loop {STEP_SECONDS:g} s steps, the last with <= 0.1% lost; ours: "
                   f"{ours['note']} (peak {ours['peak']:,.0f}/s); Linux: {lin['note']} (peak {lin['peak']:,.0f}/s); "
                   f"{loads}", peer)
        if not ours["best"] or not lin["best"]:  # a side lost at every step: no ratio to give
            row["ratio"] = None
        rows.append(row)
        for q in ("p50", "p99"):
            rows.append(_row(
                f"UDP echo round trip {q} at {LATENCY_RATE:,}/s{where}", "us", ours["lat"][q], lin["lat"][q], "lower",
                f"{common}; host-measured (slirp and host sockets included), {ours['lat_lost']} lost (ours), "
                f"{lin['lat_lost']} lost (Linux); {loads}", peer))

    for r in rows:
        r["note"] += f"; hung Linux boots retried in this run: {_Tally.retries}"
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r['name']:<50} ours {r['ours']:>10} {r['unit']:<11} Linux {r['peer']:>10}  ratio {r['ratio']}")
