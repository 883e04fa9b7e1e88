"""Start `osvtrace record` in the background and wait for what it writes."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Callable

from tests.support.vm import OSVTRACE, ROOT


def start_record(*args: str) -> subprocess.Popen:
    """A recorder in the background, as a user would run it."""
    return subprocess.Popen(OSVTRACE + ["record", "--no-build", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stop_by_ctl(p: subprocess.Popen, sock: Path, cli: Callable[..., subprocess.CompletedProcess]) -> str:
    """Send ctl stop to a recording, wait for it, and check it ended there with nothing lost;
    returns what it printed. (The caller kills the recorder if anything before failed.)"""
    st = cli("ctl", str(sock), "stop")
    assert st.returncode == 0 and st.stdout.startswith("stopping"), st.stdout + st.stderr
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stdout + stderr
    assert "at a ctl stop, 0 lost" in stdout
    return stdout



def ctl_events(sock: Path, cli: Callable[..., subprocess.CompletedProcess]) -> int:
    """Events a recording has received so far (`ctl status`), checking none was lost."""
    st = cli("ctl", str(sock), "status")
    assert st.returncode == 0 and re.match(r"[\d,]+ events, 0 lost, ", st.stdout), st.stdout + st.stderr
    return int(st.stdout.split()[0].replace(",", ""))


def ack_ns(trace, reply: dict) -> int:
    """When the guest applied a ctl command (its ack's TSC), on the trace's clock."""
    return int((reply["guest_tsc"] - trace.meta.tsc_boot) * 1e9 / trace.meta.tsc_hz)
