"""The live progress line of `osvtrace record` (only on a terminal).

    recording 12.3 s | 2.01 M events/s | 64.2 MB/s | 24.60 M events | lost cpu0 0, cpu1 12

Rates are over the last couple of seconds, not since the start, so a stall
shows at once. Guest console output printed meanwhile scrolls above the line.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.text import Text

WINDOW = 2.0  # seconds the rates are averaged over


def human(n: float) -> str:
    """12, 118.15 k, 2.00 M ..."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


class Progress:
    """``with Progress(on=tty) as p: p.update(events, bytes, lost_per_cpu)``."""

    def __init__(self, on: bool, file: IO[str] | None = None):
        self.on = on
        self.t0 = time.monotonic()
        self._hist: collections.deque[tuple[float, int, int]] = collections.deque()
        self._live: Live | None = None
        self._file = file or sys.stdout

    def __enter__(self) -> "Progress":
        if self.on:
            console = Console(file=self._file)
            self._live = Live(Text("recording ..."), console=console, refresh_per_second=4, transient=True,
                              redirect_stdout=True, redirect_stderr=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def line(self, events: int, nbytes: int, lost: dict[int, int], state: str = "recording") -> str:
        now = time.monotonic()
        self._hist.append((now, events, nbytes))
        while len(self._hist) > 2 and now - self._hist[0][0] > WINDOW:
            self._hist.popleft()
        t, e, b = self._hist[0]
        dt = max(now - t, 1e-6)
        ev_rate = (events - e) / dt if now > t else 0.0
        mb_rate = (nbytes - b) / dt / 1e6 if now > t else 0.0
        lost_txt = ", ".join(f"cpu{c} {n:,}" for c, n in sorted(lost.items())) or "0"
        return (f"{state} {now - self.t0:.1f} s | {human(ev_rate)} events/s | {mb_rate:.1f} MB/s | "
                f"{human(events)} events | lost {lost_txt}")

    def update(self, events: int, nbytes: int, lost: dict[int, int], state: str = "recording") -> None:
        if self._live is None:
            return
        self._live.update(Text(self.line(events, nbytes, lost, state)))
