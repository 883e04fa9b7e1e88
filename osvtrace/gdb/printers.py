"""The osv pretty-printers (one collection, `osv` in `info pretty-printer`): kernel
modules add theirs to PRINTERS; a printer returns one string and never raises.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import gdb  # type: ignore[import-not-found]

from osvtrace.errors import OsvtraceError
from osvtrace.gdb.commands import DEBUG_ENV, OsvError, active_kernel
from osvtrace.gdb.guestmem import static_reads


class PrettyPrinters:
    """The osv pretty-printers, by the stripped type's name (or a function giving it, for
    names known only once the ELF is loaded). Each printer gets the value and returns a
    string; it never raises (a failure prints as `<osv: ...>`)."""

    name = "osv"

    def __init__(self) -> None:
        self.enabled = True
        self.subprinters: list[Any] = []
        self.entries: list[tuple[Any, Callable[[Any], str], _Sub]] = []

    def add(self, type_name: str | Callable[[], str], fn: Callable[[Any], str], label: str = "") -> None:
        sub = _Sub(label or (type_name if isinstance(type_name, str) else fn.__name__))
        self.subprinters.append(sub)
        self.entries.append((type_name, fn, sub))

    def __call__(self, val: Any) -> Any:
        try:
            t = val.type.strip_typedefs()
        except gdb.error:
            return None
        if t.code != gdb.TYPE_CODE_STRUCT or not t.name:
            return None
        try:
            if active_kernel() is not None:  # the printers know osvtrace's kernel only
                return None
        except gdb.error:
            return None
        for name, fn, sub in self.entries:
            if not sub.enabled:
                continue
            if not isinstance(name, str):
                try:
                    name = name()
                except (OsvError, gdb.error):
                    continue
            if name == t.name:
                return _Printer(fn, val)
        return None


@dataclass
class _Sub:
    name: str
    enabled: bool = True


class _Printer:
    def __init__(self, fn: Callable[[Any], str], val: Any) -> None:
        self.fn, self.val = fn, val

    def to_string(self) -> str:
        try:
            with static_reads():
                return self.fn(self.val)
        except (OsvError, OsvtraceError, gdb.error, gdb.MemoryError) as e:
            return f"<osv: {e}>"
        except Exception as e:  # never a traceback in the middle of `print`
            if os.environ.get(DEBUG_ENV):
                raise
            return f"<osv: internal error: {type(e).__name__}: {e}>"


PRINTERS = PrettyPrinters()


def value_address(val: Any) -> int:
    """The address of a printed object (pretty-printers read the live bytes themselves)."""
    if val.address is None:
        raise OsvError("value not in memory")
    return int(val.address)
