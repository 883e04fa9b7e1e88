"""Tab completion: commands, options, filter values, and SQL (tables, columns, keywords,
tracepoints, thread names in quotes, mutex addresses), all from the trace at hand."""

from __future__ import annotations

import re
from typing import Iterable, Iterator

import numpy as np

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from osvtrace.shell.commands import ALIASES, COMMANDS, SETTINGS, SQL_STARTS
from osvtrace.shell.context import FILTER_KEYS, Context

SQL_KEYWORDS = (
    "select", "from", "where", "group", "by", "order", "having", "limit", "offset", "join", "left", "right", "inner",
    "outer", "on", "using", "as", "and", "or", "not", "in", "is", "null", "between", "like", "ilike", "distinct",
    "case", "when", "then", "else", "end", "with", "union", "all", "asc", "desc", "count", "sum", "avg", "min",
    "max", "quantile_cont", "median", "approx_count_distinct", "coalesce", "cast", "over", "partition", "window",
    "lag", "lead", "row_number", "rank", "hex", "printf", "list", "string_agg", "filter", "qualify", "describe",
)
SETTING_VALUES = {"format": ("table", "csv", "json"), "color": ("on", "off"), "pager": ("builtin", "off", "less -RS"),
                  "limit": ("all", "20", "100", "1000")}
_IDENT_TAIL = re.compile(r"[A-Za-z0-9_]*$")
_MUTEX_CTX = re.compile(r"\bmutex\s*(=|<>|!=|in\s*\(|in\s*\([0-9,\s]*,)\s*[0-9]*$", re.I)
_TABLE_CTX = re.compile(r"\b(from|join|describe)\s+[A-Za-z0-9_]*$", re.I)


class ShellCompleter(Completer):
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        before = document.text_before_cursor
        stripped = before.lstrip()
        if not re.search(r"\s", stripped):  # the command word itself
            yield from _prefixed(stripped, ((n, c.summary) for n, c in sorted(COMMANDS.items())))
            return
        word0 = stripped.split(None, 1)[0].lower()
        if word0 in SQL_STARTS:
            yield from self.sql(stripped)
            return
        cmd = COMMANDS.get(ALIASES.get(word0, word0))
        if cmd is None:
            return
        args = stripped[len(word0):]
        words = args.split()
        current = "" if args.endswith((" ", "\t", "\n")) or not words else words[-1]
        done = words if not current else words[:-1]
        kind = cmd.complete
        if kind == "sql":
            yield from self.sql(args)
        elif kind == "command":
            if not done:
                yield from _prefixed(current, ((n, c.summary) for n, c in sorted(COMMANDS.items())))
        elif kind == "table":
            if not done:
                yield from _prefixed(current, self.tables())
        elif kind == "set":
            yield from self.set_args(done, current)
        elif kind == "unset":
            yield from _prefixed(current, ((k, "") for k in FILTER_KEYS if k not in done))
        elif kind in ("options", "timeline"):
            prev = done[-1] if done else ""
            if current.startswith("-"):
                yield from _prefixed(current, ((o, "") for o in cmd.options))
            elif prev in ("--thread",):
                yield from _prefixed(current, self.threads())
            elif prev == "--tp":
                yield from _prefixed(current, self.tracepoints())
            elif prev == "--cpu":
                yield from _prefixed(current, self.cpus(""))
            elif kind == "timeline" and prev not in ("--width", "--since", "--until"):
                yield from _prefixed(current, (("cpus", "every CPU"), ("threads", "every thread")))
                yield from _prefixed(current, self.cpus("cpu"))
                yield from _prefixed(current, self.threads())

    # ------------------------------------------------------------ value sources

    def threads(self) -> Iterable[tuple[str, str]]:
        for tid, name in sorted(self.ctx.thread_names.items()):
            yield (_quote(name), f"tid {tid}")
        for tid, name in sorted(self.ctx.thread_names.items()):
            yield (str(tid), name)

    def tracepoints(self) -> Iterable[tuple[str, str]]:
        counts = self.ctx.tracepoint_counts
        for n in self.ctx.tracepoint_names:
            yield (n, f"{counts.get(n, 0):,} events")

    def cpus(self, prefix: str) -> Iterable[tuple[str, str]]:
        return ((f"{prefix}{c}", "CPU") for c in range(max(self.ctx.trace.ncpus, 1)))

    def tables(self) -> Iterable[tuple[str, str]]:
        from osvtrace.model import SPECS

        for n in self.ctx.table_columns:
            yield (n, SPECS[n].doc if n in SPECS else f"tracepoint, {self.ctx.tracepoint_counts.get(n, 0):,} events")

    def mutexes(self) -> Iterable[tuple[str, str, str]]:
        """(text, display, meta): SQL has no hex literals, so the text is the decimal address."""
        mutexes = self.ctx.mutexes
        names = self.ctx.model.symbols.objects(np.array([a for a, _ in mutexes], np.uint64)) if mutexes else []
        for (addr, n), name in zip(mutexes, names):
            yield (str(addr), f"{addr:#x}", f"mutex {name}, {n:,} records" if name else f"mutex, {n:,} records")

    def set_args(self, done: list[str], current: str) -> Iterator[Completion]:
        if not done:
            yield from _prefixed(current, [(k, "filter") for k in FILTER_KEYS] + [(s, "setting") for s in SETTINGS])
            return
        key = done[0].lower()
        if key == "thread":
            yield from _prefixed(current.split(",")[-1], self.threads())
        elif key == "tp":
            yield from _prefixed(current.split(",")[-1], self.tracepoints())
        elif key == "cpu":
            yield from _prefixed(current.split(",")[-1], self.cpus(""))
        elif key in SETTING_VALUES and len(done) == 1:
            yield from _prefixed(current, ((v, "") for v in SETTING_VALUES[key]))

    # ------------------------------------------------------------ SQL

    def sql(self, text: str) -> Iterator[Completion]:
        quote = _open_quote(text)
        if quote is not None:  # inside a string literal: thread and tracepoint names
            names = [(n, f"thread {t}") for t, n in sorted(self.ctx.thread_names.items())]
            names += list(self.tracepoints())
            for name, meta in names:
                if name.startswith(quote):
                    yield Completion(name.replace("'", "''") + "'", -len(quote), display=name, display_meta=meta)
            return
        word = _IDENT_TAIL.search(text).group(0)  # type: ignore[union-attr]
        if _MUTEX_CTX.search(text) or (word[:1].isdigit() and self.ctx.mutexes):
            for t, disp, meta in self.mutexes():
                if t.startswith(word) or disp.startswith(word.lower()):
                    yield Completion(t, -len(word), display=disp, display_meta=meta)
            return
        if _TABLE_CTX.search(text):
            yield from _prefixed(word, self.tables())
            return
        mentioned = [n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if n in self.ctx.table_columns]
        cols: dict[str, str] = {}
        for t in mentioned or list(self.ctx.table_columns):
            for c, doc in self.ctx.table_columns[t]:
                cols.setdefault(c, f"{t}: {doc}")
        upper = word[:1].isupper()
        yield from _prefixed(word, cols.items())
        yield from _prefixed(word, self.tables())
        yield from _prefixed(word, ((k.upper() if upper else k, "keyword") for k in SQL_KEYWORDS))


def _prefixed(word: str, items: Iterable[tuple[str, str]]) -> Iterator[Completion]:
    """Completions starting with `word` (case-insensitive), each once."""
    low = word.lower()
    seen: set[str] = set()
    for text, meta in items:
        if text in seen:
            continue
        bare = text.strip("'\"")
        if text.lower().startswith(low) or bare.lower().startswith(low.strip("'\"")):
            seen.add(text)
            yield Completion(text, -len(word), display_meta=meta)


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[\w.*?\[\]@:/+-]+", name) else "'" + name.replace("'", "'\\''") + "'"


def _open_quote(text: str) -> str | None:
    """The text typed after an unclosed single quote, or None."""
    if text.count("'") % 2 == 0:
        return None
    return text[text.rfind("'") + 1:]
