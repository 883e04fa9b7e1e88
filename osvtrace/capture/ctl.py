"""Run-time control of a recording: `osvtrace ctl SOCKET enable|disable|backtrace|nobacktrace GLOB`,
flush, stop, status.

Two hops. A client (this module's :func:`send`, behind `osvtrace ctl`) talks
to the recorder over its control socket, one JSON object per line each way::

    -> {"cmd": "enable", "arg": "sched_*"}
    <- {"ok": true, "result": 9, "message": "enabled 9 tracepoints", "guest_tsc": ..., "ms": 3.1}

The recorder numbers each guest command and writes it as one text line,
``ID VERB ARG``, to the guest's virtio-serial port ``org.osvtrace.ctl``
(kernel/core/trace_ctl.cc). The guest applies enable/disable (and backtrace/nobacktrace:
whether the records of enabled tracepoints carry their stack) at once and its
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
from typing import Callable

from osvtrace.errors import OsvtraceError, UsageError

GUEST_VERBS = ("enable", "disable", "backtrace", "nobacktrace", "flush", "stop")
GLOB_VERBS = ("enable", "disable", "backtrace", "nobacktrace")  # those taking tracepoint globs
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
    if cmd in GLOB_VERBS:
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


class Relay:
    """The recorder's side: clients' JSON lines in, guest command lines out, acks back.

    Driven by the recorder's event loop (non-blocking client sockets registered with its
    selector); `status()` answers `status` locally, `on_stop()` is told about a `stop`
    before it goes to the guest (so the recorder knows the end frame that follows is
    expected)."""

    def __init__(self, guest: socket.socket, status: Callable[[], dict], on_stop: Callable[[], None]):
        self.guest = guest
        self.status = status
        self.on_stop = on_stop
        self.ended = False  # the guest's stream is over: it takes no more commands
        self._ids = 0
        self._pending: dict[int, tuple[socket.socket | None, float]] = {}
        self._clients: dict[socket.socket, bytearray] = {}

    def command(self, cmd: str, arg: str | None = None, client: socket.socket | None = None) -> int:
        """Send a command to the guest; its ack goes to `client` (if any). Returns its id."""
        self._ids += 1
        if self.ended:
            _reply(client, {"ok": False, "message": "the guest's stream has ended"})
            return self._ids
        self._pending[self._ids] = (client, time.monotonic())
        try:
            self.guest.sendall(guest_line(self._ids, cmd, arg))
        except OSError as e:
            self._pending.pop(self._ids, None)
            _reply(client, {"ok": False, "message": f"cannot reach the guest: {e}"})
        return self._ids

    def ack(self, cmd_id: int, result: int, tsc: int, message: str) -> None:
        """The guest's reply (an ack frame) to command `cmd_id`."""
        client, t_sent = self._pending.pop(cmd_id, (None, 0.0))
        _reply(client, {"ok": result >= 0, "result": result, "message": message, "guest_tsc": tsc,
                        "ms": round((time.monotonic() - t_sent) * 1e3, 3)})

    def add_client(self, c: socket.socket) -> None:
        c.setblocking(False)
        self._clients[c] = bytearray()

    def read_client(self, c: socket.socket) -> bool:
        """Bytes from a client; False when it has gone (then `drop` it)."""
        try:
            data = c.recv(65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            return False
        buf = self._clients[c]
        buf += data
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            self._request(c, line)
        return True

    def drop(self, c: socket.socket) -> None:
        self._clients.pop(c, None)
        for i, (client, t) in list(self._pending.items()):
            if client is c:
                self._pending[i] = (None, t)  # its reply has nowhere to go
        c.close()

    def close(self) -> None:
        for c in list(self._clients):
            c.close()
        self._clients.clear()

    def _request(self, client: socket.socket, line: bytes) -> None:
        try:
            req = json.loads(line)
            cmd, arg = req.get("cmd"), req.get("arg")
            check_command(cmd, arg)
        except (ValueError, AttributeError) as e:
            _reply(client, {"ok": False, "message": f"bad request: {e}"})
            return
        except OsvtraceError as e:
            _reply(client, {"ok": False, "message": str(e)})
            return
        if cmd == "status":
            _reply(client, {"ok": True, "result": 0, **self.status()})
            return
        if cmd == "stop":
            self.on_stop()
        self.command(cmd, arg, client)


def _reply(client: socket.socket | None, obj: dict) -> None:
    if client is None:
        return
    try:
        client.setblocking(True)  # one short line: let it go out whole
        client.sendall(json.dumps(obj).encode() + b"\n")
        client.setblocking(False)
    except OSError:
        pass  # the client went away: its loss
