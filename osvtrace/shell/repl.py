"""The read-eval-print loop: prompt, history, multi-line SQL, Ctrl-C and Ctrl-D, errors.

Input comes from prompt_toolkit (a terminal, or a pipe input under test); command output
goes to a text stream (stdout), printed or paged. A command's mistake is one line on the
error stream and the loop goes on; Ctrl-C cancels the running command (DuckDB queries
stop too) or clears the line being typed; Ctrl-D on an empty line leaves.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Iterable, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output

from osvtrace.errors import OsvtraceError
from osvtrace.format.trace import Trace
from osvtrace.model.filters import format_duration, format_ns
from osvtrace.shell import commands, paging
from osvtrace.shell.completion import ShellCompleter
from osvtrace.shell.context import Context, Settings, history_path
from osvtrace.shell.highlight import STYLE, ShellLexer

SQL_WORDS = ("sql", "query", *commands.SQL_STARTS)


def needs_more(text: str) -> bool:
    """Whether Enter should add a line instead of running: SQL runs at ';' or an empty line."""
    stripped = text.strip()
    if not stripped:
        return False
    word = stripped.split(None, 1)[0].lower()
    if word not in SQL_WORDS:
        return False
    lines = text.split("\n")
    if len(lines) > 1 and not lines[-1].strip():
        return False
    return not stripped.endswith(";")


class Shell:
    """An interactive session over one trace.

    ``out``/``err`` receive command output and errors (stdout/stderr by default);
    ``input``/``output`` are prompt_toolkit's (a pipe input and DummyOutput under test).
    ``rows`` is the screen height used to decide on paging (0: never page; None: the
    terminal's height when ``out`` is a terminal, else never).
    """

    def __init__(self, trace: Trace, *, out: TextIO | None = None, err: TextIO | None = None,
                 input: Input | None = None, output: Output | None = None, history: History | Path | None = None,
                 rows: int | None = None, color: bool | None = None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        tty = _isatty(self.out)
        if color is None:
            color = tty and "NO_COLOR" not in os.environ
        self.ctx = Context(trace, Settings(color=color))
        self.tty = tty
        self.rows = rows  # None: the terminal's height at each command (it may be resized)
        self.input, self.output = input, output
        self.history = history if isinstance(history, History) else self._file_history(history)
        self._session: PromptSession | None = None

    # ------------------------------------------------------------ prompt_toolkit session

    def _file_history(self, path: Path | None) -> History:
        path = path or history_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
            return FileHistory(str(path))
        except OSError as e:
            self.err.write(f"osvtrace: warning: history not kept ({path}: {e.strerror})\n")
            return InMemoryHistory()

    @property
    def session(self) -> PromptSession:
        if self._session is None:
            self._session = PromptSession(
                history=self.history, completer=ShellCompleter(self.ctx), complete_while_typing=False,
                lexer=ShellLexer(), style=STYLE, include_default_pygments_style=False, multiline=True,
                key_bindings=self._keys(), prompt_continuation=lambda width, n, soft: "." * (width - 2) + "> ",
                auto_suggest=AutoSuggestFromHistory(), input=self.input, output=self.output,
                enable_history_search=False, mouse_support=False)
        return self._session

    def _keys(self) -> KeyBindings:
        kb = KeyBindings()

        @kb.add("enter")
        def _enter(event: KeyPressEvent) -> None:
            buf = event.current_buffer
            if buf.complete_state and buf.complete_state.current_completion is not None:
                buf.complete_state = None  # Enter on a chosen completion keeps it, runs nothing
                return
            buf.complete_state = None
            if needs_more(buf.text):
                buf.insert_text("\n")
            else:
                if buf.text != buf.text.rstrip():  # the empty line that ended a query is not kept
                    buf.text = buf.text.rstrip()
                buf.validate_and_handle()

        return kb

    def _prompt(self) -> StyleAndTextTuples:
        flt = self.ctx.filters.describe()
        parts: StyleAndTextTuples = [("class:prompt", f"osvtrace:{self.ctx.path.name}")]
        if flt:
            parts.append(("class:prompt.filters", " [" + " ".join(f"{k}={v}" for k, v in flt) + "]"))
        parts.append(("", "> "))
        return parts

    # ------------------------------------------------------------ running

    def banner(self) -> str:
        t = self.ctx.trace
        lo, hi = t.span_ns
        return (f"osvtrace shell: {t.path.name}: {len(t):,} events on {t.ncpus} CPU(s), "
                f"{format_ns(lo)} to {format_ns(hi)} ({format_duration(hi - lo)}).\n"
                "help lists the commands, Tab completes, Ctrl-C cancels, Ctrl-D leaves.")

    def execute(self, text: str) -> bool:
        """Run one input; False when the shell should end."""
        try:
            out = commands.run(self.ctx, text)
            self.show(out)
        except commands.Quit:
            return False
        except KeyboardInterrupt:
            self.err.write("cancelled\n")
        except OsvtraceError as e:
            self.err.write(f"error: {e}\n")
        except BrokenPipeError:
            pass
        except Exception as e:  # a bug must not end the session: one line, then the prompt
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            self.err.write(f"error: internal: {type(e).__name__}: {msg} (please report)\n")
        self.err.flush()
        return True

    def show(self, out: commands.Output) -> None:
        if out is None:
            return
        rows = self.rows if self.rows is not None else (paging.screen_size(self.out).lines if self.tty else 0)
        paging.emit(commands.lines_of(out), self.out, pager=self.ctx.settings.pager, rows=rows,
                    input=self.input, output=self.output)

    def warm_up(self) -> threading.Thread:
        """Compute the names completion offers on a background thread, so the first Tab
        does not wait for them (a second on a 10 M-event trace)."""
        ctx = self.ctx

        def work() -> None:
            try:
                ctx.thread_names, ctx.tracepoint_names, ctx.tracepoint_counts, ctx.table_columns, ctx.mutexes
            except Exception:  # noqa: BLE001  (the completer will compute them and report then)
                pass

        t = threading.Thread(target=work, name="osvtrace-shell-names", daemon=True)
        t.start()
        return t

    def run(self, banner: bool = True) -> int:
        """The interactive loop, until Ctrl-D or `quit`."""
        self.warm_up()
        if banner:
            self.out.write(self.banner() + "\n")
            for w in self.ctx.trace.warnings:
                self.err.write(f"osvtrace: warning: {w}\n")
            self.out.flush()
        while True:
            try:
                text = self.session.prompt(self._prompt)
            except KeyboardInterrupt:  # Ctrl-C while typing: drop the line
                continue
            except EOFError:
                break
            if not self.execute(text):
                break
        self.ctx.close()
        return 0

    def run_script(self, lines: Iterable[str]) -> int:
        """Run commands from lines (stdin not a terminal, or -c): the same grouping of SQL
        lines as at the prompt. Returns 1 if any command failed."""
        failed = False
        err = self.err

        class _Count:
            def write(self, s: str) -> None:
                nonlocal failed
                failed = failed or s.startswith(("error:", "cancelled"))
                err.write(s)

            def flush(self) -> None:
                err.flush()

        self.err = _Count()  # type: ignore[assignment]
        try:
            buf = ""
            for line in lines:
                buf = buf + "\n" + line.rstrip("\n") if buf else line.rstrip("\n")
                if needs_more(buf):
                    continue
                text, buf = buf, ""
                if not self.execute(text):
                    break
            if buf.strip():
                self.execute(buf)
        finally:
            self.err = err
            self.ctx.close()
        return 1 if failed else 0


def _isatty(f: TextIO) -> bool:
    try:
        return f.isatty()
    except (AttributeError, ValueError):
        return False
