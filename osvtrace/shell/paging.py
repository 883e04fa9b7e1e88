"""Showing command output: printed when it fits the screen, paged when it does not.

The built-in pager is a small prompt_toolkit application on the shell's own input and
output (so it works in tmux, over ssh and under test with a pipe input). It pulls lines
from the command's iterator only as far as the reader scrolls, so `list` over millions of
events opens at once. `set pager less -RS` sends long output to an external pager instead.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
from typing import Iterator, TextIO

from prompt_toolkit.application import Application
from prompt_toolkit.formatted_text import ANSI, StyleAndTextTuples, to_formatted_text
from prompt_toolkit.formatted_text.utils import fragment_list_to_text
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.layout.utils import explode_text_fragments
from prompt_toolkit.output import Output
from prompt_toolkit.styles import Style

HELP = "q quit  ↑↓ jk line  Space/b page  g/G top/end  ←→ hl sideways"


def screen_size(stream: TextIO | None = None) -> os.terminal_size:
    """The terminal's real size (an ioctl on the stream), before $COLUMNS/$LINES, which a
    parent shell may have exported with a stale size."""
    import sys

    try:
        return os.get_terminal_size((stream or sys.stdout).fileno())
    except (AttributeError, ValueError, OSError):
        return shutil.get_terminal_size((100, 24))


def emit(lines: Iterator[str], out: TextIO, *, pager: str = "builtin", rows: int = 0,
         input: Input | None = None, output: Output | None = None) -> None:
    """Write `lines` to `out`, or page them when there are more than `rows` - 1 (rows 0: never page)."""
    head = list(itertools.islice(lines, max(rows - 1, 0))) if rows else []
    nxt = next(lines, None) if rows else None
    if not rows or nxt is None or pager == "off":
        for ln in itertools.chain(head, [] if nxt is None else [nxt], lines):
            out.write(ln + "\n")
        out.flush()
        return
    rest = itertools.chain(head, [nxt], lines)
    if pager == "builtin":
        Pager(rest, input=input, output=output).run()
    else:
        external(rest, pager, out)


def external(lines: Iterator[str], command: str, out: TextIO) -> None:
    """Stream lines into an external pager such as `less -RS`; quitting it early is fine."""
    try:
        proc = subprocess.Popen(shlex.split(command), stdin=subprocess.PIPE, text=True)
    except OSError as e:
        out.write(f"error: pager {command!r}: {e.strerror}; set pager builtin\n")
        return
    assert proc.stdin is not None
    try:
        for ln in lines:
            proc.stdin.write(ln + "\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    proc.wait()


class Pager:
    """A scrolling view of lines (with ANSI colours), fed lazily from an iterator."""

    def __init__(self, lines: Iterator[str], *, input: Input | None = None, output: Output | None = None):
        self.lines: list[str] = []
        self.more: Iterator[str] | None = lines
        self.top = 0
        self.left = 0
        self.body = Window(FormattedTextControl(self._visible), wrap_lines=False)
        status = Window(FormattedTextControl(self._status), height=1, style="class:status")
        self.app: Application = Application(layout=Layout(HSplit([self.body, status])), key_bindings=self._keys(),
                                            full_screen=True, input=input, output=output,
                                            style=Style.from_dict({"status": "reverse"}), mouse_support=False)

    # ------------------------------------------------------------ data

    def ensure(self, n: int) -> None:
        """Pull lines until there are n (or the iterator ends)."""
        while self.more is not None and len(self.lines) < n:
            chunk = list(itertools.islice(self.more, max(n - len(self.lines), 256)))
            self.lines += chunk
            if not chunk:
                self.more = None

    @property
    def height(self) -> int:
        return max(self.app.output.get_size().rows - 1, 1)

    def _visible(self) -> StyleAndTextTuples:
        """The lines on screen, cut `left` columns in. NOTE: the cut is done here, not with the
        Window's horizontal scroll, which follows the (unused) cursor back to column 0."""
        h = self.height
        self.ensure(self.top + h)
        shown = self.lines[self.top:self.top + h]
        if not self.left:
            return to_formatted_text(ANSI("\n".join(shown)))
        out: StyleAndTextTuples = []
        for i, line in enumerate(shown):
            if i:
                out.append(("", "\n"))
            out += explode_text_fragments(to_formatted_text(ANSI(line)))[self.left:]
        return out

    def _status(self) -> StyleAndTextTuples:
        h = self.height
        last = min(self.top + h, len(self.lines))
        total = f"{len(self.lines):,}" + ("+" if self.more is not None else "")
        col = f", column {self.left + 1}" if self.left else ""
        return [("", f" lines {self.top + 1}-{last} of {total}{col}   {HELP} ")]

    def scroll(self, lines: int) -> None:
        h = self.height
        self.ensure(self.top + lines + 2 * h)
        self.top = max(0, min(self.top + lines, max(len(self.lines) - h, 0)))

    # ------------------------------------------------------------ keys

    def _keys(self) -> KeyBindings:
        kb = KeyBindings()

        @kb.add("q")
        @kb.add("Q")
        @kb.add("escape", eager=True)
        @kb.add("c-c")
        def _quit(event: KeyPressEvent) -> None:
            event.app.exit()

        def bind(keys: tuple[str, ...], fn) -> None:  # noqa: ANN001
            for k in keys:
                kb.add(k)(lambda event, fn=fn: fn())

        bind(("down", "j", "enter", "c-n", "c-e"), lambda: self.scroll(1))
        bind(("up", "k", "c-p", "c-y"), lambda: self.scroll(-1))
        bind(("pagedown", "space", "f", "c-f", "c-v"), lambda: self.scroll(self.height))
        bind(("pageup", "b", "c-b"), lambda: self.scroll(-self.height))
        bind(("c-d",), lambda: self.scroll(self.height // 2))
        bind(("home", "g", "<"), self.home)
        bind(("end", "G", ">"), self.end)
        bind(("right", "l"), lambda: self.sideways(8))
        bind(("left", "h"), lambda: self.sideways(-8))
        return kb

    def home(self) -> None:
        self.top = 0

    def end(self) -> None:
        self.ensure(1 << 62)
        self.top = max(len(self.lines) - self.height, 0)

    def sideways(self, cols: int) -> None:
        shown = self.lines[self.top:self.top + self.height]
        widest = max((len(_plain(ln)) for ln in shown), default=0)
        width = self.app.output.get_size().columns
        self.left = max(0, min(self.left + cols, widest - width + 8))

    def run(self) -> None:
        self.app.run()


def _plain(line: str) -> str:
    return fragment_list_to_text(to_formatted_text(ANSI(line))) if "\x1b" in line else line
