"""Start `osvtrace record` in the background and wait for what it writes."""

from __future__ import annotations

import subprocess
import time

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
