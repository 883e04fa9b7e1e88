"""Run-time control of a recording: `osvtrace ctl SOCKET enable|disable GLOB`, flush, stop, status.

Two hops. A client (this module's :func:`send`, behind `osvtrace ctl`) talks
to the recorder over its control socket, one JSON object per line each way::

    -> {"cmd": "enable", "arg": "sched_*"}
    <- {"ok": true, "result": 9, "message": "enabled 9 tracepoints", "guest_tsc": ..., "ms": 3.1}

The recorder numbers each guest command and writes it as one text line,
``ID VERB ARG``, to the guest's virtio-serial port ``org.osvtrace.ctl``
(kernel/core/trace_ctl.cc). The guest applies enable/disable at once and its
reply comes back as an ack frame on the trace stream, in order with the
records, so everything recorded after the ack saw the change. ``status`` is
answered by the recorder itself.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

from osvtrace.errors import OsvtraceError, UsageError

GUEST_VERBS = ("enable", "disable", "flush", "stop")
VERBS = GUEST_VERBS + ("status",)
_GLOBS = re.compile(r"^[A-Za-z0-9_*?]+(,[A-Za-z0-9_*?]+)*$")


class CtlError(OsvtraceError):
    """The recorder could not be reached, or refused the command."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def check_command(cmd: str, arg: str | None) -> None:
    """Refuse malformed commands before they travel (the guest would refuse them too)."""
    if cmd not in VERBS:
        raise UsageError(f"unknown control command {cmd!r} (choose from {', '.join(VERBS)})")
    if cmd in ("enable", "disable"):
        if not arg or not _GLOBS.match(arg):
            raise UsageError(f"{cmd} needs tracepoint globs such as 'sched_*,mutex_lock' (got {arg!r})")
    elif arg:
        raise UsageError(f"{cmd} takes no argument (got {arg!r})")


def guest_line(cmd_id: int, cmd: str, arg: str | None) -> bytes:
    """The line the guest's ctl port parses."""
    return f"{cmd_id} {cmd}{' ' + arg if arg else ''}\n".encode()


def send(path: str | Path, cmd: str, arg: str | None = None, *, timeout: float = 10.0) -> dict:
    """Send one command to a running recorder and return its reply (raises CtlError if refused)."""
    check_command(cmd, arg)
    path = Path(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except FileNotFoundError:
        raise CtlError(f"{path}: no such control socket (is `osvtrace record` running? it prints the path)") from None
    except ConnectionRefusedError:
        raise CtlError(f"{path}: nobody listens there (the recording has ended?)") from None
    except OSError as e:
        raise CtlError(f"{path}: cannot connect: {e.strerror or e}") from None
    try:
        s.sendall(json.dumps({"cmd": cmd, "arg": arg}).encode() + b"\n")
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = s.recv(65536)
            except TimeoutError:
                raise CtlError(f"no reply to {cmd!r} within {timeout:g} s (the guest may be hung)") from None
            if not data:
                raise CtlError("the recorder closed the connection without replying (the recording ended?)")
            buf += data
    finally:
        s.close()
    reply = json.loads(buf.split(b"\n", 1)[0])
    if not reply.get("ok"):
        raise CtlError(reply.get("message") or "refused")
    return reply
