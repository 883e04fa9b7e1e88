"""The kernel's clock: TSC frequency and boot TSC from the control block, for times
in seconds since boot.
"""

from __future__ import annotations

from dataclasses import dataclass

from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import layout_of
from osvtrace.gdb.fmt import format_seconds
from osvtrace.gdb.guestmem import control_address, read_small


@dataclass(frozen=True)
class Clock:
    hz: int
    boot: int  # TSC at kernel entry

    def ms(self, tsc: int) -> float:
        return (tsc - self.boot) * 1000.0 / self.hz

    def span(self, ticks: int) -> str:
        return format_seconds(ticks / self.hz)


def clock() -> Clock | None:
    """The kernel's TSC frequency and boot TSC (from the control block), None before the
    trace runtime has published them."""
    try:
        c = layout_of("trace::control")
        buf = read_small(control_address(), c.size)
        hz, boot = c.get(buf, "tsc_hz"), c.get(buf, "tsc_boot")
    except OsvError:
        return None
    return Clock(hz, boot) if hz else None
