"""Helper processes (QEMU, gdb) that never outlive osvtrace.

Each runs in its own session, so a Ctrl-C at the terminal reaches only
osvtrace (which then ends them in order), and gets SIGKILL from the kernel if
osvtrace itself dies, however it dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the parent dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass  # not Linux: the session and our own cleanup still apply


def spawn(cmd: list[str], **kw: object) -> subprocess.Popen:
    """Start a helper process in its own session, killed if we die.

    NOTE: PR_SET_PDEATHSIG fires when the spawning *thread* exits: call this from a
    thread that outlives the child (the main thread, in the CLI and the tests)."""
    return subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent, **kw)  # type: ignore[call-overload]


def end_process(p: subprocess.Popen, grace: float = 3.0) -> None:
    """Stop a process started by spawn() with its process group: SIGTERM, then SIGKILL."""
    if p.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
