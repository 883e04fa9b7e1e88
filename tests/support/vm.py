"""Shared pieces of the tests that boot the real kernel in QEMU and attach gdb.

These tests never skip: a missing QEMU, gdb or kernel build is a failure with the
reason in the message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OSVTRACE = [sys.executable, "-m", "osvtrace.cli.main"]

# Every QEMU this test run starts inherits this variable: orphans are found by it, so
# QEMUs run by other people on the same machine at the same time do not count.
TOKEN_VAR = "OSVTRACE_TEST_RUN"
TOKEN = uuid.uuid4().hex
os.environ[TOKEN_VAR] = TOKEN


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: these tests need them (make deps installs them)",
                    pytrace=False)


def our_qemus() -> set[int]:
    """pids of live qemu-system processes started by this test run."""
    try:
        out = subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        pytest.fail("pgrep not installed (procps): cannot check for orphan QEMU processes", pytrace=False)
    pids = set()
    for pid in map(int, out.split()):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue  # gone already
        if f"{TOKEN_VAR}={TOKEN}".encode() in env.split(b"\0") and state != "Z":
            pids.add(pid)
    return pids


@pytest.fixture(scope="session")
def kernel() -> Path:
    """build/kernel.elf, built (or found up to date) once per session."""
    require_tools("make", "g++", "qemu-system-x86_64")
    from osvtrace.vm import kernel_build

    return kernel_build.build(quiet=True)


@pytest.fixture
def no_orphans():
    """Fails the test if a QEMU it started is still running afterwards."""
    before = our_qemus()
    yield
    import time

    deadline = time.monotonic() + 5
    left = our_qemus() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = our_qemus() - before
    assert not left, f"QEMU processes left running: {sorted(left)}"


def osvtrace(*args: str, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run the CLI as a user would (a separate process)."""
    return subprocess.run(OSVTRACE + list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=env, **kw)
