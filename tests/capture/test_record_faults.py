"""Fault injection in `osvtrace record`: real QEMU, real processes, real signals.

Faults: QEMU SIGKILLed at random points of a streaming recording, the recorder SIGKILLed at
random points, the recorder stopped (SIGSTOP) for seconds so nothing reads the socket, a full
disk (a small tmpfs when we may mount one, else RLIMIT_FSIZE), and both kills with
`--via shm`. After each: every file opens (`osvtrace.open` and `osvtrace info`), the
recorder said what happened in one line and exited non-zero, no QEMU of ours is left in
the process table, and nothing is missing that is not counted.

The app is tpstorm with only trace_marker enabled: one pinned thread per CPU numbers its
markers 0, 1, 2 ..., so a CPU's records must be contiguous in sequence from slot 0, and
every hole in the marker numbers must be announced, exactly, by the trace_lost records
before the next marker. Where the app finished, emitted == decoded + lost per CPU.

The default suite runs a few kills of each kind; `pytest -m slow tests/capture/test_record_faults.py`
runs 50 + 50 (virtio) and 10 + 10 (shm). OSVTRACE_SEED=N repeats the random points.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import osvtrace
from osvtrace.capture.virtio import sweep_stale_socket_dirs
from tests.support.vm import OSVTRACE, ROOT, our_qemus
from tests.support.vm import osvtrace as cli

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]

EMITTED = re.compile(r"tpstorm: cpu (\d+) emitted (\d+)")
SEED = int(os.environ.get("OSVTRACE_SEED", "0")) or random.randrange(1 << 30)
# 64 KiB rings: the drain falls behind now and then, so the kills also land among drops.
STORM = ["--smp", "2", "--buffer", "64K", "--trace", "trace_marker", "tpstorm", "--rate", "200000", "--seconds", "2"]


# ---------------------------------------------------------------- helpers

def start(out: Path, *args: str, preexec=None) -> subprocess.Popen:
    """A recorder in the background, in its own process group (so teardown can end it)."""
    return subprocess.Popen(OSVTRACE + ["record", "--no-build", "-o", str(out), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=preexec)


def qemu_of(p: subprocess.Popen, timeout: float) -> int | None:
    """The recorder's QEMU (its child), or None if the recorder ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        out = subprocess.run(["pgrep", "-P", str(p.pid), "-f", "qemu-system"], capture_output=True,
                             text=True).stdout.split()
        if out:
            return int(out[0])
        time.sleep(0.01)
    return None


def gone(pids: set[int], timeout: float = 10) -> set[int]:
    """Those of `pids` still alive (not zombies) after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    left = pids & our_qemus()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = pids & our_qemus()
    return left


@contextlib.contextmanager
def reaped(p: subprocess.Popen):
    """Whatever happens in the block, the recorder and any QEMU this test started end."""
    before = our_qemus()
    try:
        yield
    finally:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGCONT)
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        for pid in our_qemus() - before:  # only reached when a test already failed on an orphan
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def one_line_error(stderr: str) -> str:
    """The recorder's stderr is exactly one line, `osvtrace: ...`, and no traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("osvtrace: ") and "Traceback" not in stderr, stderr
    return lines[0]


def emitted(console: str) -> dict[int, int]:
    return {int(c): int(n) for c, n in EMITTED.findall(console)}


@dataclass
class Accounted:
    markers: dict[int, int]  # decoded trace_marker records per CPU
    dropped: dict[int, int]  # the rings' lost counters, per CPU
    announced: dict[int, int]  # sum of trace_lost counts per CPU
    holes: dict[int, int]  # marker numbers missing before the last decoded marker, per CPU


def readable(path: Path) -> osvtrace.Trace:
    """The file opens in the library and `osvtrace info` reads it (exit 3 when the file was
    cut short: a killed recorder leaves no trailer)."""
    t = osvtrace.open(path)
    r = cli("info", str(path), timeout=60)
    assert r.returncode == (3 if t.scan.warnings else 0) and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert not [w for w in t.warnings if "damaged" in w or "CRC" in w], t.warnings
    return t


def account(t: osvtrace.Trace, stream: bool = True) -> Accounted:
    """Per CPU: records contiguous in sequence (from slot 0 when streaming), no invalid or
    partial slots, and every hole in a CPU's marker numbers announced by exactly as many
    trace_lost counts before the next marker (streaming; a flight recorder drops nothing)."""
    cat = t.catalog
    marker, lost_tp = cat.by_name["trace_marker"].id, cat.by_name["trace_lost"].id
    seq = t.seq
    value = np.zeros(len(t), np.int64)
    idx, a = t.args("trace_marker")
    value[idx] = a["value"]
    idx, a = t.args("trace_lost")
    value[idx] = a["count"]
    out = Accounted({}, {}, {}, {})
    for cpu in range(t.ncpus):
        loss = t.loss.get(cpu)
        m = np.nonzero(t.events.cpu == cpu)[0]
        if loss is None or not len(m):
            continue
        m = m[np.argsort(seq[m], kind="stable")]
        s, tp, v = seq[m], t.events.tp[m], value[m]
        assert set(np.unique(tp).tolist()) <= {marker, lost_tp}, f"CPU {cpu}: unexpected tracepoints"
        assert (loss.gap_slots, loss.invalid_slots, loss.partial_slots, loss.duplicate_slots) == (0, 0, 0, 0), loss
        assert (np.diff(s) == 1).all(), f"CPU {cpu}: sequence not contiguous"  # both tracepoints are 1 slot
        if stream:
            assert s[0] == 0, f"CPU {cpu}: the stream does not start at slot 0"
        is_m = tp == marker
        mv = v[is_m]
        if stream:
            announced_before = np.cumsum(np.where(is_m, 0, v))[is_m]
            # marker k (0-based among the decoded ones) carries number mv[k]: mv[k] - k were dropped
            # before it, and the trace_lost records before it must say exactly that.
            holes_before = mv - np.arange(len(mv))
            bad = np.nonzero(holes_before != announced_before)[0]
            assert not len(bad), (f"CPU {cpu}: marker {mv[bad[0]]} has {holes_before[bad[0]]} missing before it, "
                                  f"trace_lost says {announced_before[bad[0]]}")
            assert mv[0] == announced_before[0]
        else:
            assert (np.diff(mv) == 1).all(), f"CPU {cpu}: a flight recorder's markers must be consecutive"
        out.markers[cpu] = int(is_m.sum())
        out.dropped[cpu] = loss.dropped
        out.announced[cpu] = int(v[~is_m].sum())
        out.holes[cpu] = int(mv[-1] + 1 - len(mv)) if len(mv) else 0
        assert out.announced[cpu] <= out.dropped[cpu], f"CPU {cpu}: more announced than the ring dropped"
    return out


def check_finished(t: osvtrace.Trace, stdout: str) -> Accounted:
    """The app ran to its end: emitted == decoded + lost, exactly, per CPU."""
    acc = account(t)
    sent = emitted(stdout)
    assert sent and set(sent) == set(acc.markers), stdout[-2000:]
    for cpu, n in sent.items():
        assert acc.markers[cpu] + acc.dropped[cpu] == n, (cpu, n, acc)
    return acc


@dataclass
class Tally:
    """What a series of kills did, for docs/reliability.md (printed with -s)."""

    name: str
    kills: int = 0
    finished_first: int = 0  # the app ended before the kill landed
    files: int = 0
    readable: int = 0
    no_file: int = 0
    events: int = 0
    dropped: int = 0
    orphans: int = 0

    def report(self) -> None:
        print(f"\n{self.name}: {self.kills} kills (seed {SEED}), {self.finished_first} after the app's end, "
              f"{self.files} files all readable ({self.no_file} runs killed before any file), "
              f"{self.events:,} events decoded, {self.dropped:,} dropped and counted, {self.orphans} orphan QEMU")


# ---------------------------------------------------------------- QEMU killed

def kill_qemu_runs(tmp_path: Path, n: int, rng: random.Random, via: str = "virtio") -> Tally:
    tally = Tally(f"QEMU SIGKILLed during record --via {via}")
    for i in range(n):
        out = tmp_path / f"q{i}.osvt"
        p = start(out, "--via", via, *STORM)
        with reaped(p):
            q = qemu_of(p, 60)
            assert q is not None, "the recorder ended before starting QEMU: " + "".join(p.communicate(10))
            # Anywhere from QEMU's first instruction (boot, chardev connect, meta frame) to after the app's
            # end (2 s of storm plus the stream's end).
            time.sleep(rng.uniform(0, 3.5))
            with contextlib.suppress(ProcessLookupError):
                os.kill(q, signal.SIGKILL)
            stdout, stderr = p.communicate(timeout=60)
            tally.kills += 1
            assert not gone({q}), f"run {i}: QEMU {q} still there"
        if p.returncode == 0:  # the app ended first: a normal recording
            assert stderr == "" and ("at the app's end" in stdout or "from shared RAM" in stdout), stderr
            tally.finished_first += 1
            t = readable(out)
            acc = check_finished(t, stdout) if via == "virtio" else account(t, stream=False)
        else:
            msg = one_line_error(stderr)
            if via == "virtio":
                assert re.match(r"osvtrace: (QEMU ended before connecting to the trace port: QEMU was killed by "
                                r"signal 9|the guest never started streaming \(QEMU was killed by signal 9\); no "
                                r"trace saved|QEMU ended before the stream did \(QEMU was killed by signal 9\); the "
                                r"trace up to its last complete chunk is in )", msg), msg
            else:
                assert re.match(r"osvtrace: QEMU was killed by signal 9(; the trace read from its RAM is in | before "
                                r"the kernel set up tracing; no trace saved \(|; QEMU left no RAM file at )", msg), msg
            if not out.exists():
                assert re.search("no trace saved|connecting", msg), msg
                tally.no_file += 1
                continue
            t = readable(out)
            acc = account(t, stream=via == "virtio")
        tally.files += 1
        tally.readable += 1
        tally.events += len(t)
        tally.dropped += sum(acc.dropped.values())
    tally.report()
    return tally


def test_qemu_killed_at_random_points_leaves_readable_fully_accounted_files(kernel, tmp_path):
    kill_qemu_runs(tmp_path, 3, random.Random(SEED))


@pytest.mark.slow
def test_qemu_killed_at_50_random_points(kernel, tmp_path):
    t = kill_qemu_runs(tmp_path, 50, random.Random(SEED))
    assert t.files > 25  # most kills landed while streaming


# ---------------------------------------------------------------- recorder killed

def kill_recorder_runs(tmp_path: Path, n: int, rng: random.Random, via: str = "virtio",
                       elf: Path = ROOT / "build" / "kernel.elf") -> Tally:
    tally = Tally(f"recorder SIGKILLed during record --via {via}")
    pids = []
    for i in range(n):
        out = tmp_path / f"r{i}.osvt"
        p = start(out, "--via", via, *STORM)
        with reaped(p):
            # From the recorder's own start-up (imports, sockets, QEMU spawn) to after the app's end.
            time.sleep(rng.uniform(0, 4.5))
            qemus = our_qemus()
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            stdout, stderr = p.communicate(timeout=30)
            tally.kills += 1
            pids.append(p.pid)
            left = gone(qemus)  # PR_SET_PDEATHSIG: QEMU dies with the recorder
            tally.orphans += len(left)
            assert not left, f"run {i}: QEMU {sorted(left)} outlived the recorder"
        finished = p.returncode == 0
        tally.finished_first += finished
        ram = sorted(Path("/dev/shm").glob(f"osvtrace-{p.pid}-*.ram"))
        if via == "shm" and not finished:
            # No recorder left to read the RAM file: it stays for `osvtrace recover`.
            if ram:
                r = cli("recover", str(ram[0]), str(elf), "-o", str(out), timeout=60)
                for f in ram:
                    f.unlink()
                # killed before the kernel set up tracing: nothing to recover, said in one line
                assert r.returncode == 0 or re.fullmatch(r"osvtrace: the control block at 0x[0-9a-f]+ is not published "
                                                         r"yet \(magic 0\).*\n", r.stderr), r.stdout + r.stderr
        else:
            assert not ram, f"run {i}: RAM files left: {ram}"
        if not out.exists():
            tally.no_file += 1
            continue
        if via == "virtio":  # this one got as far as recording: it swept the directories of those before
            left = [d for pid in pids[:-1] for d in Path(tempfile.gettempdir()).glob(f"osvtrace-rec-{pid}-*")]
            assert not left, left
        t = readable(out)
        if via == "virtio" and not finished and t.scan.trailer is not None:
            # Killed after the file was complete (printing the summary, exiting): a whole recording.
            assert t.scan.trailer.status == "app exited with status 0" and not t.warnings, t.warnings
            tally.finished_first += 1
            finished = True
        acc = check_finished(t, stdout) if finished and via == "virtio" else account(t, stream=via == "virtio")
        if not finished and via == "virtio":
            # killed between two writes of a section, the file ends inside it: "truncated" says so
            # instead of "no trailer" (everything before it is intact, checked above)
            assert any("no trailer" in w or "truncated at byte" in w for w in t.warnings), t.warnings
        tally.files += 1
        tally.readable += 1
        tally.events += len(t)
        tally.dropped += sum(acc.dropped.values())
    # A killed recorder leaves its socket directory; the next recording (or this) removes it.
    sweep_stale_socket_dirs()
    left = [d for pid in pids for d in Path(tempfile.gettempdir()).glob(f"osvtrace-rec-{pid}-*")]
    assert not left, left
    tally.report()
    return tally


def test_recorder_killed_at_random_points_takes_qemu_and_leaves_readable_files(kernel, tmp_path):
    kill_recorder_runs(tmp_path, 3, random.Random(SEED + 1))


@pytest.mark.slow
def test_recorder_killed_at_50_random_points(kernel, tmp_path):
    t = kill_recorder_runs(tmp_path, 50, random.Random(SEED + 1))
    assert t.files > 25


# ---------------------------------------------------------------- --via shm

def test_shm_qemu_killed_keeps_the_trace_read_from_ram(kernel, tmp_path):
    kill_qemu_runs(tmp_path, 2, random.Random(SEED + 2), via="shm")


def test_shm_recorder_killed_takes_qemu_and_leaves_a_recoverable_ram_file(kernel, tmp_path):
    kill_recorder_runs(tmp_path, 2, random.Random(SEED + 3), via="shm")


@pytest.mark.slow
def test_shm_killed_at_20_random_points(kernel, tmp_path):
    kill_qemu_runs(tmp_path, 10, random.Random(SEED + 2), via="shm")
    kill_recorder_runs(tmp_path, 10, random.Random(SEED + 3), via="shm")


# ---------------------------------------------------------------- stalled socket

def test_stalled_recorder_the_guest_counts_its_drops_and_the_stream_resumes(kernel, tmp_path):
    """Nobody reads the socket for 3 s (the recorder is SIGSTOPped): QEMU stops taking the
    guest's buffers, the drain cannot free ring space, the rings drop and count; after
    SIGCONT the stream carries on and the app's end arrives. Exact per CPU."""
    out = tmp_path / "stall.osvt"
    p = start(out, "--buffer", "256K", "--smp", "2", "--trace", "trace_marker", "tpstorm", "--rate", "200000",
              "--seconds", "6")
    with reaped(p):
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 1 << 20):
            assert time.monotonic() < deadline and p.poll() is None, "no records arrived"
            time.sleep(0.05)
        os.killpg(p.pid, signal.SIGSTOP)
        stopped_at = out.stat().st_size
        time.sleep(3)
        assert out.stat().st_size == stopped_at  # nothing was written while stopped
        os.killpg(p.pid, signal.SIGCONT)
        stdout, stderr = p.communicate(timeout=90)
    assert p.returncode == 0, stdout[-2000:] + stderr
    t = readable(out)
    assert t.scan.trailer.status == "app exited with status 0"
    acc = check_finished(t, stdout)
    tm = t.events.time[t.events.tp == t.catalog.by_name["trace_marker"].id]
    sent = emitted(stdout)
    idx, markers = t.args("trace_marker")
    for cpu in (0, 1):
        # ~3 s at 100 k/s per CPU could not fit a 256 KiB ring (8 k slots): most of it dropped
        assert acc.dropped[cpu] > 150_000, acc
        # every drop before the CPU's last marker in the file is announced there by trace_lost
        # records; drops after it (the app ended while its ring was still full: seen under load)
        # have no later record to announce them and are in the lost counter only
        last = int(markers["value"][t.events.cpu[idx] == cpu].max())
        assert acc.announced[cpu] == acc.holes[cpu], acc
        assert acc.dropped[cpu] == acc.announced[cpu] + (sent[cpu] - 1 - last), (acc, sent, last)
    assert tm.max() - tm.min() > 5e9  # the stream resumed: markers up to the app's end
    assert re.search(r"recorded [\d,]+ events on 2 CPU\(s\) at the app's end, [\d,]+ lost \(cpu0 [\d,]+, "
                     r"cpu1 [\d,]+\)", stdout), stdout[-500:]


# ---------------------------------------------------------------- full disk

def _can_mount_tmpfs() -> bool:
    fs = Path("/proc/filesystems")
    return os.geteuid() == 0 and fs.exists() and "tmpfs" in fs.read_text()


@pytest.fixture(params=["tmpfs", "rlimit"])
def small_disk(request, tmp_path):
    """(directory, preexec, error) where writing a trace fails after ~4 MiB: a 4 MiB tmpfs when we
    are root (else the next), or RLIMIT_FSIZE on the recorder (its writes then fail with EFBIG, as
    Python ignores SIGXFSZ)."""
    d = tmp_path / "small"
    d.mkdir()
    if request.param == "tmpfs" and _can_mount_tmpfs():
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "osvtrace-test", str(d)], capture_output=True)
        if r.returncode == 0:
            try:
                yield d, None, "No space left on device"
            finally:
                subprocess.run(["umount", "-l", str(d)], capture_output=True)
            return

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))

    yield d, limit, "File too large"


def test_full_disk_stops_with_one_line_and_a_file_ending_in_a_trailer(kernel, small_disk):
    d, preexec, why = small_disk
    out = d / "full.osvt"
    # The storm runs until the disk is full: 2 s of it (STORM) made ~12 MB, but with 64 KiB rings
    # a drain the loaded host runs late drops much of it, and less than 4 MiB arriving would
    # leave the disk never full
    p = start(out, *STORM[:-1], "60", preexec=preexec)
    with reaped(p):
        qemus = our_qemus()
        stdout, stderr = p.communicate(timeout=90)
        assert not gone(our_qemus() | qemus), "QEMU left running"
    assert p.returncode == 1, stdout[-2000:] + stderr
    msg = one_line_error(stderr)
    m = re.fullmatch(rf"osvtrace: cannot write {re.escape(str(out))}: {why}; recording stopped: the file holds "
                     r"([\d,]+) events up to its last complete chunk and a trailer; ([\d,]+) events received after "
                     r"it are not in it \(the trailer counts their slots as a gap\)", msg)
    assert m, msg
    assert not (d / "full.osvt.part").exists()
    t = readable(out)
    assert t.scan.trailer is not None and t.scan.trailer.status.startswith(f"incomplete: cannot write the file: {why}")
    held, unwritten = (int(x.replace(",", "")) for x in m.groups())
    assert len(t) == held and held > 50_000
    gaps = sum(lc.gap_slots for lc in t.loss.values())
    assert gaps == unwritten  # one slot per record here: every received record is in the file or in a gap
    assert len(out.read_bytes()) <= 4 << 20
    # The gap is each CPU's unwritten tail; before it, the file is whole and accounted for.
    for cpu, lc in t.loss.items():
        if lc.gaps:
            assert lc.gaps == [(int(t.seq[t.events.cpu == cpu].max()) + 1, lc.gap_slots)], lc
        lc.gap_slots, lc.gaps = 0, []
    account(t)


def test_no_room_even_for_the_metadata_leaves_no_file(kernel, tmp_path):
    """The first write fails: no half-written file, one line, non-zero."""
    out = tmp_path / "tiny.osvt"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    p = start(out, *STORM, preexec=limit)
    with reaped(p):
        stdout, stderr = p.communicate(timeout=90)
    assert p.returncode == 1, stdout[-2000:] + stderr
    assert one_line_error(stderr) == (f"osvtrace: cannot write {out}: File too large; recording stopped, "
                                      "no trace saved")
    assert not out.exists() and not (tmp_path / "tiny.osvt.part").exists()


def test_shm_qemu_killed_before_the_kernel_booted_says_so_in_one_line(kernel, tmp_path):
    """Killed before the control block exists: the reason is QEMU's death, not a RAM-file riddle.
    QEMU starts paused (`-S`, added by a wrapper first on PATH), so the kill is before the kernel
    ran, however late this test gets to it (at load 9 it once found QEMU after the boot)."""
    out = tmp_path / "early.osvt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "qemu-system-x86_64"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("qemu-system-x86_64")} "$@" -S\n')
    wrapper.chmod(0o755)
    p = subprocess.Popen(OSVTRACE + ["record", "--no-build", "-o", str(out), "--via", "shm", *STORM], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    with reaped(p):
        q = qemu_of(p, 60)
        assert q is not None
        os.kill(q, signal.SIGKILL)
        stdout, stderr = p.communicate(timeout=60)
    assert p.returncode not in (0, None)
    msg = one_line_error(stderr)
    assert re.match(r"osvtrace: QEMU was killed by signal 9(; QEMU left no RAM file at .*: no trace saved| before the "
                    r"kernel set up tracing; no trace saved \(.*\))$", msg), msg
    assert not out.exists() and not list(Path("/dev/shm").glob(f"osvtrace-{p.pid}-*.ram"))
