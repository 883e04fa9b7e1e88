"""The `osv` command prefixes, the base of every command, the one error a command
reports (any failure becomes one clear line, `osv: ...`, never a traceback), and the
choice of kernel: the commands are written for osvtrace's own kernel; another kernel
(real OSv: osvtrace/gdb/kernels/osv.py) registers a `Kernel` that says by a symbol in
the ELF whether it is the one loaded and brings its own implementation of the commands.
The choice is made here, once per loaded ELF, not in each command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import gdb  # type: ignore[import-not-found]
from osvtrace.errors import OsvtraceError

DEBUG_ENV = "OSVTRACE_GDB_DEBUG"  # set to 1: internal errors show their traceback


class OsvError(OsvtraceError):
    """A failed osv command: one line for the user, no traceback. (An OsvtraceError, so the
    shared readers such as osvtrace.capture.rings pass it on unchanged.)"""


class OsvCommand(gdb.Command):
    """Base of every `osv` command: turns any failure into one clear line.

    Subclasses implement run(arg, from_tty); their docstring is the help text. An
    unexpected exception (a bug) is reported as one `osv: internal error` line, never as
    a traceback, unless $OSVTRACE_GDB_DEBUG is set."""

    def invoke(self, arg: str, from_tty: bool) -> None:
        try:
            kernel = active_kernel()
            if kernel is None:
                self.run(arg, from_tty)
            else:
                kernel.run(self.name, arg, from_tty)
        except gdb.GdbError:
            raise
        except (OsvError, OsvtraceError) as e:
            raise gdb.GdbError(f"osv: {e}") from None
        except gdb.MemoryError as e:
            raise gdb.GdbError(f"osv: cannot read guest memory: {e}") from None
        except gdb.error as e:
            raise gdb.GdbError(f"osv: {one_line(str(e))}") from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise gdb.GdbError(f"osv: {where}{e.strerror or e}") from None
        except Exception as e:
            if os.environ.get(DEBUG_ENV):
                raise
            raise gdb.GdbError(f"osv: internal error in `{self.name}` ({type(e).__name__}: {e}); "
                               f"{DEBUG_ENV}=1 shows the traceback") from None

    name = "osv"

    def __init__(self, name: str, command_class: int = gdb.COMMAND_DATA, completer: int = gdb.COMPLETE_NONE,
                 prefix: bool = False) -> None:
        self.name = name
        super().__init__(name, command_class, completer, prefix)

    def run(self, arg: str, from_tty: bool) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass
class Kernel:
    """A kernel other than osvtrace's own: `detect()` says from the ELF's symbols whether it
    is the one loaded; `commands` maps an osv command's name to its implementation there
    (same arguments as OsvCommand.run). A command it lacks fails with one line naming it."""

    name: str
    detect: Callable[[], bool]
    commands: dict[str, Callable[[str, bool], None]] = field(default_factory=dict)
    functions: dict[str, Callable[..., object]] = field(default_factory=dict)  # `$name(...)` -> a gdb.Value

    def run(self, command: str, arg: str, from_tty: bool) -> None:
        impl = self.commands.get(command)
        if impl is None:
            have = ", ".join(sorted(self.commands))
            raise OsvError(f"`{command}` is not available on {self.name} (there: {have})")
        impl(arg, from_tty)


class OsvFunction(gdb.Function):
    """Base of the `$osv_...` convenience functions: on another kernel, its implementation
    runs instead of `run`; an OsvError becomes one line."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def invoke(self, *args: object) -> object:
        try:
            kernel = active_kernel()
            if kernel is None:
                return self.run(*args)
            impl = kernel.functions.get(self.name)
            if impl is None:
                raise OsvError(f"not available on {kernel.name}")
            return impl(*args)
        except OsvtraceError as e:
            raise gdb.GdbError(f"${self.name}: {e}") from None

    def run(self, *args: object) -> object:  # pragma: no cover - overridden
        raise NotImplementedError


KERNELS: list[Kernel] = []
_active: list[Kernel | None] = []  # the cached choice: [] until made


def add_kernel(kernel: Kernel) -> None:
    KERNELS.append(kernel)
    forget_kernel()


def active_kernel() -> Kernel | None:
    """The registered kernel whose symbols the loaded ELF has, or None for osvtrace's own
    (cached until a new objfile loads: forget_kernel)."""
    if not _active:
        _active.append(next((k for k in KERNELS if k.detect()), None))
    return _active[0]


def forget_kernel() -> None:
    _active.clear()


def one_line(text: str) -> str:
    """gdb's own messages may span lines ("... running.\nUse the interrupt command ..."):
    an osv error is one line."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


class OsvPrefix(gdb.Command):
    """Commands for the osvtrace unikernel: threads, CPUs, mutexes, memory, the kernel log
    and the trace rings. `help osv` lists them; each has its own help (`help osv mutex`)."""

    def __init__(self) -> None:
        super().__init__("osv", gdb.COMMAND_USER, gdb.COMPLETE_COMMAND, True)


class OsvInfoPrefix(gdb.Command):
    """Kernel state: `osv info threads`."""

    def __init__(self) -> None:
        super().__init__("osv info", gdb.COMMAND_USER, gdb.COMPLETE_COMMAND, True)


def parse_cpu(arg: str, usage: str) -> int | None:
    """An optional CPU number argument."""
    argv = gdb.string_to_argv(arg)
    if not argv:
        return None
    if len(argv) > 1 or not argv[0].isdigit():
        raise OsvError(f"usage: {usage}")
    return int(argv[0])
