"""Driving gdb from Python through its machine interface (MI3): commands with
results, asynchronous stops, timeouts. Used by `osvtrace record --via gdb` and
the tests; the osv commands themselves run inside that gdb (osvtrace.gdb).
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osvtrace import resources
from osvtrace.errors import OsvtraceError
from osvtrace.vm.proc import end_process, spawn

GDB = "gdb"


class GdbError(OsvtraceError):
    """gdb is missing, failed, or a command did not answer in time."""


class GdbMissing(GdbError):
    def __init__(self) -> None:
        super().__init__(f"{GDB} not found: install it with apt-get install gdb")


# ---------------------------------------------------------------- MI output syntax

def _cstring(s: str, i: int) -> tuple[str, int]:
    """Parse a C string starting at s[i] == '"'; returns (text, index after it)."""
    assert s[i] == '"'
    out = bytearray()
    i += 1
    esc = {"n": 10, "t": 9, "r": 13, "\\": 92, '"': 34, "a": 7, "b": 8, "f": 12, "v": 11, "e": 27}
    while i < len(s):
        c = s[i]
        if c == '"':
            return out.decode("utf-8", "replace"), i + 1
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n in "01234567":  # gdb escapes non-ASCII bytes as octal
                j = i + 1
                while j < len(s) and j < i + 4 and s[j] in "01234567":
                    j += 1
                out.append(int(s[i + 1:j], 8) & 0xFF)
                i = j
                continue
            out.append(esc.get(n, ord(n)))
            i += 2
            continue
        out += c.encode()
        i += 1
    raise ValueError("unterminated MI string")


def _value(s: str, i: int) -> tuple[Any, int]:
    c = s[i]
    if c == '"':
        return _cstring(s, i)
    if c in "{[":
        close = "}" if c == "{" else "]"
        i += 1
        items: list[Any] = []
        named: dict[str, Any] = {}
        while i < len(s) and s[i] != close:
            if s[i] in '"{[':
                v, i = _value(s, i)
                items.append(v)
            else:
                k, v, i = _pair(s, i)
                named.setdefault(k, v)
                items.append(v)
            if i < len(s) and s[i] == ",":
                i += 1
        return (named if c == "{" or (named and len(named) == len(items)) else items), i + 1
    raise ValueError(f"bad MI value at {i}: {s[i:i + 20]!r}")


def _pair(s: str, i: int) -> tuple[str, Any, int]:
    eq = s.index("=", i)
    v, j = _value(s, eq + 1)
    return s[i:eq], v, j


def parse_results(s: str) -> dict[str, Any]:
    """`a="1",b={c="2"}` -> {'a': '1', 'b': {'c': '2'}}"""
    out: dict[str, Any] = {}
    i = 0
    while i < len(s):
        k, v, i = _pair(s, i)
        out[k] = v
        if i < len(s) and s[i] == ",":
            i += 1
    return out


@dataclass
class Record:
    """One line of MI output."""

    kind: str  # result (^), exec (*), status (+), notify (=), console (~), target (@), log (&)
    token: int | None = None
    cls: str = ""  # done, running, connected, error, exit / stopped, running ...
    results: dict[str, Any] = field(default_factory=dict)
    text: str = ""  # stream records


def parse_line(line: str) -> Record | None:
    line = line.rstrip("\r\n")
    if not line or line.startswith("(gdb)"):
        return None
    if line[0] in "~@&":
        try:
            text = _cstring(line, 1)[0]
        except (ValueError, AssertionError, IndexError):
            text = line[1:]
        return Record({"~": "console", "@": "target", "&": "log"}[line[0]], text=text)
    j = 0
    while j < len(line) and line[j].isdigit():
        j += 1
    token = int(line[:j]) if j else None
    if j >= len(line) or line[j] not in "^*+=":
        return Record("console", text=line + "\n")  # the inferior's or gdb's raw output
    kind = {"^": "result", "*": "exec", "+": "status", "=": "notify"}[line[j]]
    rest = line[j + 1:]
    cls, _, res = rest.partition(",")
    try:
        results = parse_results(res) if res else {}
    except (ValueError, IndexError):
        results = {"raw": res}
    return Record(kind, token, cls, results)


# ---------------------------------------------------------------- the driver

@dataclass
class Answer:
    cls: str
    results: dict[str, Any]
    console: str  # console stream output printed while the command ran


class Gdb:
    """A gdb subprocess in MI mode: ``with Gdb(elf) as g: g.cli("osv info threads")``."""

    def __init__(self, elf: str | Path | None = None, *, load_osv: bool = True, gdb: str = GDB,
                 timeout: float = 30.0):
        if shutil.which(gdb) is None:
            raise GdbMissing()
        self.timeout = timeout
        self._token = 0
        self._q: queue.Queue[Record | None] = queue.Queue()
        self.stops: list[Record] = []  # *stopped records not yet consumed
        self.log: list[str] = []  # everything gdb said (for error messages)
        self.running = False
        self.exited = False
        self.proc = spawn([gdb, "--interpreter=mi3", "--nx", "--quiet"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._pump, daemon=True, name="gdb-mi")
        self._reader.start()
        try:
            self.mi("-gdb-set mi-async on")
            self.mi("-gdb-set pagination off")
            self.mi("-gdb-set confirm off")
            if elf is not None:
                self.mi(f"-file-exec-and-symbols {mi_quote(str(elf))}")
            if load_osv:
                self.cli(f"source {resources.gdb_script()}")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ plumbing

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            rec = parse_line(line)
            if rec is not None:
                self._q.put(rec)
        self._q.put(None)

    def _send(self, command: str) -> int:
        if self.proc.poll() is not None:
            raise GdbError(f"gdb exited (status {self.proc.returncode}): {self._tail()}")
        self._token += 1
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{self._token}{command}\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise GdbError(f"gdb exited: {self._tail()}") from None
        return self._token

    def _tail(self) -> str:
        lines = [ln.strip() for ln in self.log if ln.strip()]
        return lines[-1] if lines else "no output"

    def _next(self, deadline: float) -> Record | None:
        """The next record, or raise on timeout. None: gdb's output ended."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        try:
            rec = self._q.get(timeout=left)
        except queue.Empty:
            raise TimeoutError from None
        if rec is None:
            self._q.put(None)  # keep the end visible to later calls
            return None
        if rec.kind in ("console", "target", "log"):
            self.log.append(rec.text)
        elif rec.kind == "exec":
            if rec.cls == "stopped":
                self.running = False
                self.stops.append(rec)
                if rec.results.get("reason", "").startswith("exited"):
                    self.exited = True
            elif rec.cls == "running":
                self.running = True
        elif rec.kind == "notify" and rec.cls == "thread-group-exited":
            self.exited = True
            self.running = False
        return rec

    # ------------------------------------------------------------ commands

    def mi(self, command: str, timeout: float | None = None) -> Answer:
        """Run an MI command and return its result; ^error raises GdbError with gdb's message."""
        token = self._send(command if command.startswith("-") else f"-{command}")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        console: list[str] = []
        while True:
            try:
                rec = self._next(deadline)
            except TimeoutError:
                raise GdbError(f"gdb did not answer {command!r} within {timeout or self.timeout:.0f} s") from None
            if rec is None:
                raise GdbError(f"gdb exited during {command!r}: {self._tail()}")
            if rec.kind == "console":
                console.append(rec.text)
            if rec.kind == "result" and rec.token == token:
                if rec.cls == "error":
                    raise GdbError(str(rec.results.get("msg", "error")).strip())
                return Answer(rec.cls, rec.results, "".join(console))

    def cli(self, command: str, timeout: float | None = None) -> str:
        """Run a gdb console command (such as an `osv` command); returns what it printed."""
        return self.mi(f"-interpreter-exec console {mi_quote(command)}", timeout).console

    def connect(self, port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
        """target remote; QEMU answers with a stop, which is consumed here."""
        self.mi(f"-target-select remote {host}:{port}", timeout)
        self.wait_stopped(timeout)

    def continue_(self) -> None:
        """Resume. A *stopped record that came before gdb's ^running for this command is from
        the stop being left (gdb reports in order): dropped, so wait_stopped returns the next
        stop, not a stale one (with two vCPUs, gdb can report a stop the caller never waited for)."""
        self.mi("-exec-continue")
        self.stops.clear()

    def interrupt(self, timeout: float = 10.0) -> Record:
        self.mi("-exec-interrupt")
        return self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float) -> Record:
        """The next *stopped record (within timeout seconds); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while not self.stops:
            rec = self._next(deadline)
            if rec is None:
                raise GdbError(f"gdb exited: {self._tail()}")
            if self.exited and not self.stops:
                break
        if self.stops:
            return self.stops.pop(0)
        return Record("exec", cls="stopped", results={"reason": "exited"})

    def drain(self, seconds: float = 0.0) -> None:
        """Consume pending output (stop and exit notices) for up to `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                if self._next(deadline if seconds else time.monotonic() + 0.001) is None:
                    return
        except TimeoutError:
            return

    def close(self) -> None:
        """Leave gdb: detach nothing, just end it (QEMU's lifetime is the caller's)."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("-gdb-exit\n")
                self.proc.stdin.flush()
                self.proc.wait(3)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        end_process(self.proc, grace=1.0)
        self._reader.join(2)

    def __enter__(self) -> "Gdb":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mi_quote(s: str) -> str:
    """A C-string argument for an MI command."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
