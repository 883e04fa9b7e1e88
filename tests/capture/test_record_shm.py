"""Real QEMU: guest RAM in a shared file. `record --via shm`, and `recover` after a panic or a hang."""

from __future__ import annotations

import re
import subprocess
import time

import numpy as np
import pytest

import osvtrace
from osvtrace.capture import shm as shmcapture
from osvtrace.capture.recovery import snapshot_file
from osvtrace.vm import qemu
from osvtrace.vm.qemu import VmConfig
from tests.support.vm import OSVTRACE, ROOT
from tests.support.vm import osvtrace as cli

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]


def test_record_via_shm(kernel, tmp_path):
    out = tmp_path / "s.osvt"
    r = cli("record", "--no-build", "--via", "shm", "-o", str(out), "--smp", "2", "--trace", "sched_*",
            "pingpong", "5000")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"recorded [\d,]+ slots on 2 CPU\(s\) from shared RAM, 0 lost", r.stdout), r.stdout
    t = osvtrace.open(out)
    assert t.meta.capture == "shm" and t.scan.trailer.status == "app exited with status 0"
    assert len(t.args("sched_switch")[0]) >= 10_000 and {"ping", "pong"} <= set(t.threads.values())


def test_shm_leaves_no_ram_file_behind(kernel, tmp_path):
    # Only this recorder's RAM files (named by its pid): other recordings on the machine (a
    # second test worker) have theirs in the same directory at the same time.
    p = subprocess.Popen([*OSVTRACE, "record", "--no-build", "--via", "shm", "-o", str(tmp_path / "x.osvt"), "hello"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert not list(shmcapture.SHM_DIR.glob(f"osvtrace-{p.pid}-*.ram"))


def test_recover_after_a_panic(kernel, tmp_path):
    import json

    # --json: the summary is the only thing on stdout (the console goes to stderr), even on a panic
    r = cli("record", "--no-build", "--via", "shm", "--keep-ram", "-o", str(tmp_path / "p.osvt"), "--trace", "*",
            "--json", "crash", "panic")
    assert r.returncode == 255 and "kernel panic; the trace up to it is in" in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    ram = doc["ram_file"]
    assert (doc["via"], doc["stop"], doc["cpus"], doc["events"], doc["output"]) == \
        ("shm", "panic", 1, None, str(tmp_path / "p.osvt"))
    assert doc["slots"] > 0 and doc["bytes"] == (tmp_path / "p.osvt").stat().st_size
    try:
        rj = cli("recover", ram, str(kernel), "-o", str(tmp_path / "j.osvt"), "--json")
        assert rj.returncode == 0, rj.stderr
        rec = json.loads(rj.stdout)
        assert rec["output"] == str(tmp_path / "j.osvt") and rec["cpus"] == 1 and rec["lost"] == 0
        assert rec["slots"] > 0 and rec["threads"] >= 1
        for elf in (str(kernel), None):  # by symbol, then by the control block's magic
            out = tmp_path / f"rec-{elf is None}.osvt"
            args = ["recover", ram] + ([elf] if elf else []) + ["-o", str(out)]
            rr = cli(*args)
            assert rr.returncode == 0, rr.stderr
            assert re.match(r"recovered [\d,]+ slots on 1 CPU\(s\), 0 lost, \d+ thread names: ", rr.stdout)
            t = osvtrace.open(out)
            assert t.meta.capture == "recover" and "main" in t.threads.values()
            assert len(t.args("thread_create")[0]) >= 1
    finally:
        import os

        os.unlink(ram)


def _rings_hold(ram, kernel, n: int) -> bool:
    """Whether both CPUs' rings in a live guest's RAM file have committed n records."""
    try:
        snap, _, _ = snapshot_file(ram, kernel)
    except Exception:  # noqa: BLE001 (not booted far enough: no file yet, or no control block yet)
        return False
    return len(snap.rings) == 2 and all(r.committed >= n for r in snap.rings)


def test_recover_a_hung_guest_killed_from_outside(kernel, tmp_path):
    """The guest never finishes; QEMU is killed; the RAM file still holds the rings up to then."""
    ram = tmp_path / "hung.ram"  # any file system works for a RAM file, not only /dev/shm
    cfg = VmConfig("tpstorm", ("--rate", "50000", "--seconds", "600"), kernel=kernel, accel="tcg", smp=2,
                   trace="trace_marker,sched_*", extra_args=shmcapture.ram_args(ram, 256))
    with qemu.Vm(cfg) as vm:
        # Killed once each CPU's ring holds 5,000 records, read from the live RAM file (was: 1 s
        # after the app started, which on a loaded host may be too little guest progress)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _rings_hold(ram, kernel, 5000):
            time.sleep(0.1)
        assert _rings_hold(ram, kernel, 5000), vm.console_text()[-2000:]
        import os
        import signal

        os.kill(vm.proc.pid, signal.SIGKILL)
        vm.proc.wait(10)
    r = cli("recover", str(ram), str(kernel), "-o", str(tmp_path / "h.osvt"))
    assert r.returncode == 0, r.stderr
    t = osvtrace.open(tmp_path / "h.osvt")
    marker = t.catalog.by_name["trace_marker"].id
    per_cpu = {c: int(np.count_nonzero((t.events.tp == marker) & (t.events.cpu == c))) for c in (0, 1)}
    assert all(n > 1000 for n in per_cpu.values()), per_cpu
    for cpu in (0, 1):  # flight recorders: nothing lost, nothing torn
        assert t.loss[cpu].dropped == 0 and t.loss[cpu].invalid_slots == 0


@pytest.mark.parametrize("args,msg", [
    (["/nonexistent.ram"], "no such RAM file"),
    (["{osvt}"], "is an .osvt trace, not a RAM file"),
    (["{small}"], "too small for guest RAM"),
    (["{zeros}"], "no published control block"),
    (["{zeros}", "/nonexistent.elf"], "no such kernel ELF"),
])
def test_recover_refuses_bad_input_in_one_line(tmp_path, small_trace, args, msg):
    small = tmp_path / "small.ram"
    small.write_bytes(b"\0" * 100)
    zeros = tmp_path / "zeros.ram"
    with open(zeros, "wb") as f:
        f.truncate(8 << 20)
    args = [a.format(osvt=small_trace, small=small, zeros=zeros) for a in args]
    r = cli("recover", *args, "-o", str(tmp_path / "x.osvt"))
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
