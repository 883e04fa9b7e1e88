"""Booting the real kernel halted under QEMU's gdbstub with real gdb attached (MI), for
the gdb tests and benchmarks. Never skips: a missing tool is a failure."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from osvtrace.capture import gdb_snapshot as gdbcapture
from osvtrace.vm import qemu
from osvtrace.vm.gdbmi import Gdb, GdbError
from osvtrace.vm.qemu import VmConfig

# What must never appear in an osv command's output.
BROKEN = ("Traceback", "Python Exception", "internal error", "Error occurred in Python")


def osv_command(gdb: Gdb, command: str, timeout: float) -> str:
    """An osv command's output, or its one-line error (`ERROR ...`); fails on any traceback."""
    try:
        out = gdb.cli(command, timeout)
    except GdbError as e:
        out = f"ERROR {e}\n"
    for bad in BROKEN:
        assert bad not in out, f"{command!r} printed {bad!r}:\n{out}"
    return out


class Booted:
    """QEMU halted with its gdbstub and gdb attached through MI with the osv commands."""

    def __init__(self, kernel: Path, app: str, *args: str, timeout: float = 30.0, **kw):
        self.port = qemu.free_port()
        kw.setdefault("accel", "tcg")
        cfg = VmConfig(app, args, kernel=kernel, gdb_port=self.port, gdb_wait=True, **kw)
        self.vm = qemu.Vm(cfg).start()
        try:
            self.gdb = Gdb(kernel, timeout=timeout)
            gdbcapture._connect(self.gdb, self.vm, self.port)
        except BaseException:
            self.vm.stop()
            raise

    def run_to(self, symbol: str, timeout: float = 60) -> None:
        # Earlier run_to breakpoints go first: on 2 vCPUs under multi-threaded TCG, continuing
        # from one once reported it hit again (run 2 of a `make test-repeat N=5`:
        # run_to('osvtrace_app_exit') stopped at gdbcheck_stop) instead of stepping over it.
        self.gdb.mi("-break-delete")
        self.gdb.mi(f"-break-insert {symbol}")
        self.gdb.continue_()
        stop = self.gdb.wait_stopped(timeout)
        assert stop.results.get("reason") == "breakpoint-hit", (stop, self.vm.console_text())
        assert stop.results.get("frame", {}).get("func") == symbol, (stop, self.vm.console_text())

    def cli(self, command: str, timeout: float | None = None) -> str:
        return self.gdb.cli(command, timeout)

    def osv(self, command: str, timeout: float = 30) -> str:
        return osv_command(self.gdb, command, timeout)

    def console_until(self, text: str, timeout: float = 10) -> str:
        """The console, once it shows `text` (QEMU's output arrives on a pump thread)."""
        deadline = time.monotonic() + timeout
        while text not in self.vm.console_text():
            assert time.monotonic() < deadline, f"{text!r} never appeared:\n{self.vm.console_text()}"
            time.sleep(0.02)
        return self.vm.console_text()

    def close(self) -> None:
        self.gdb.close()
        self.vm.stop()

    def __enter__(self) -> "Booted":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- the gdbcheck app's own view

@dataclass
class AppView:
    """What kernel/apps/gdbcheck.cc printed before stopping in gdbcheck_stop()."""

    threads: dict[int, tuple[str, str, int, int]] = field(default_factory=dict)  # tid -> name, state, cpu, wait
    mutexes: dict[str, tuple[int, int, list[int]]] = field(default_factory=dict)  # name -> addr, owner, waiters
    waitqueues: dict[str, tuple[int, list[int]]] = field(default_factory=dict)  # name -> addr, waiters
    memory: dict[str, int] = field(default_factory=dict)
    main_cpu: int = -1


def _ids(text: str) -> list[int]:
    return [] if text == "-" else [int(x) for x in text.split(",")]


def parse_app(console: str) -> AppView:
    v = AppView()
    for line in console.splitlines():
        if m := re.match(r"gdbcheck: thread (\d+) (\S+) (\w+) cpu=(\d+) wait=(\S+)$", line):
            wait = 0 if m[5] in ("(nil)", "0x0") else int(m[5], 16)
            v.threads[int(m[1])] = (m[2], m[3], int(m[4]), wait)
        elif m := re.match(r"gdbcheck: mutex (\w+) (0x[0-9a-f]+) owner=(\d+) waiters=(\S+)$", line):
            v.mutexes[m[1]] = (int(m[2], 16), int(m[3]), _ids(m[4]))
        elif m := re.match(r"gdbcheck: waitqueue (\w+) (0x[0-9a-f]+) waiters=(\S+)$", line):
            v.waitqueues[m[1]] = (int(m[2], 16), _ids(m[3]))
        elif line.startswith("gdbcheck: memory "):
            v.memory = {k: int(x) for k, x in (w.split("=") for w in line.split()[2:])}
        elif m := re.match(r"gdbcheck: \d+ threads, main is \d+ on cpu (\d+)", line):
            v.main_cpu = int(m[1])
    return v


def parse_info_threads(out: str) -> dict[int, dict[str, str]]:
    """`osv info threads` rows by id: the columns of its header."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    header = lines[0].split()
    rows = {}
    for ln in lines[1:]:
        cells = ln.split(None, len(header) - 1)
        if cells[0].isdigit():  # not a note after the table
            rows[int(cells[0])] = dict(zip(header, cells))
    return rows
