"""What a shell session holds: the trace, its model, the filters set with `set`, and settings.

Commands read the current filter from here, so `set cpu 0` applies to every command that
follows until `unset cpu`. Names the completer offers (threads, tracepoints, tables,
columns, mutexes) are computed here once, from columns, on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.format.trace import Trace
from osvtrace.model import SPECS, Model
from osvtrace.model.filters import Filter, format_duration, parse_time, thread_ids, tracepoint_ids

FILTER_KEYS = ("since", "until", "cpu", "thread", "tp")


@dataclass
class Settings:
    """Shell settings (`set limit 20`, `set format csv`, `set color off`, `set pager off`)."""

    limit: int | None = 100  # rows of `sql` tables, as `osvtrace query` shows by default
    format: str = "table"  # sql output: table | csv | json
    color: bool = False
    pager: str = "builtin"  # builtin | off | an external command such as "less -RS"


@dataclass
class Filters:
    """The filters set with `set`; empty keeps everything."""

    since: int | None = None
    until: int | None = None
    cpus: list[int] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    tps: list[str] = field(default_factory=list)

    def to_filter(self) -> Filter:
        return Filter(list(self.tps), list(self.cpus), list(self.threads), self.since, self.until)

    def describe(self) -> list[tuple[str, str]]:
        """(key, value) of each filter that is set, in `set` syntax."""
        out = []
        if self.since is not None:
            out.append(("since", format_duration(self.since) if self.since else "0"))
        if self.until is not None:
            out.append(("until", format_duration(self.until)))
        if self.cpus:
            out.append(("cpu", ",".join(map(str, self.cpus))))
        if self.threads:
            out.append(("thread", ",".join(self.threads)))
        if self.tps:
            out.append(("tp", ",".join(self.tps)))
        return out


class Context:
    """One shell session over one trace."""

    def __init__(self, trace: Trace, settings: Settings | None = None):
        self.trace = trace
        self.model = Model(trace)
        self.filters = Filters()
        self.settings = settings or Settings()
        self.resources: dict[str, Any] = {}  # things to stop when the session ends (the viewer's server)

    def close(self) -> None:
        server = self.resources.pop("viewer", None)
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def path(self) -> Path:
        return self.trace.path

    # ------------------------------------------------------------ filters

    def set_filter(self, key: str, values: list[str]) -> None:
        """Check and store one filter (the checks are the CLI's: same errors for the same mistakes)."""
        if not values:
            raise UsageError(f"set {key}: needs a value (help set)")
        text = ",".join(values)
        if key in ("since", "until"):
            ns = parse_time(text, key)
            other = self.filters.until if key == "since" else self.filters.since
            if other is not None and (ns >= other if key == "since" else ns <= other):
                raise UsageError(f"set {key} {text}: the window would be empty (since must be before until)")
            setattr(self.filters, key, ns)
        elif key == "cpu":
            try:
                cpus = sorted({int(x) for x in text.replace("cpu", "").split(",") if x.strip()})
            except ValueError:
                raise UsageError(f"set cpu {text}: CPUs are numbers (set cpu 0,1)") from None
            bad = [c for c in cpus if c < 0 or c >= max(self.trace.ncpus, 1)]
            if bad:
                raise UsageError(f"set cpu {bad[0]}: the trace has CPUs 0..{self.trace.ncpus - 1}")
            self.filters.cpus = cpus
        elif key == "thread":
            _checked(thread_ids, self.trace, text, "--thread", "set thread")
            self.filters.threads = [x for x in text.split(",") if x]
        elif key == "tp":
            _checked(tracepoint_ids, self.trace, text, "--tp", "set tp")
            self.filters.tps = [x for x in text.split(",") if x]
        else:
            raise UsageError(f"set {key}: unknown filter; filters are {', '.join(FILTER_KEYS)}")

    def unset(self, keys: list[str]) -> None:
        for key in keys or list(FILTER_KEYS):
            if key not in FILTER_KEYS:
                raise UsageError(f"unset {key}: unknown filter; filters are {', '.join(FILTER_KEYS)}")
            attr = {"cpu": "cpus", "thread": "threads", "tp": "tps"}.get(key, key)
            setattr(self.filters, attr, [] if attr in ("cpus", "threads", "tps") else None)

    def window(self, flt: Filter | None = None) -> tuple[int, int]:
        """The time window of the current filters, bounded by the trace's span."""
        flt = flt or self.filters.to_filter()
        lo, hi = self.trace.span_ns
        if flt.since is not None:
            lo = max(lo, flt.since)
        if flt.until is not None:
            hi = min(hi, flt.until)
        return lo, max(hi, lo + 1)

    # ------------------------------------------------------------ names for completion

    @cached_property
    def thread_names(self) -> dict[int, str]:
        return dict(self.trace.threads)

    @cached_property
    def tracepoint_names(self) -> list[str]:
        """Tracepoints present in the trace first (by count), then the rest of the catalog."""
        ev = self.trace.events
        counts = np.bincount(ev.tp, minlength=self.trace.catalog.max_id + 1) if len(ev) else np.zeros(1, int)
        tps = self.trace.catalog.tracepoints
        seen = sorted((t for t in tps if t.id < len(counts) and counts[t.id]), key=lambda t: -counts[t.id])
        return [t.name for t in seen] + sorted(t.name for t in tps if t not in seen)

    @cached_property
    def tracepoint_counts(self) -> dict[str, int]:
        ev = self.trace.events
        counts = np.bincount(ev.tp, minlength=self.trace.catalog.max_id + 1) if len(ev) else np.zeros(1, int)
        return {t.name: int(counts[t.id]) for t in self.trace.catalog.tracepoints if t.id < len(counts)}

    @cached_property
    def mutexes(self) -> list[tuple[int, int]]:
        """(address, records) of every mutex in the trace, busiest first."""
        vals, mask = self.trace.field("mutex")
        addrs, counts = np.unique(vals[mask].view(np.uint64), return_counts=True)  # kernel addresses: unsigned
        order = np.argsort(-counts, kind="stable")
        return [(int(addrs[i]), int(counts[i])) for i in order]

    @cached_property
    def table_columns(self) -> dict[str, list[tuple[str, str]]]:
        """(column, doc) of every table SQL can name: the model's and one per tracepoint."""
        out = {name: [(c.name, c.doc) for c in spec.columns] for name, spec in SPECS.items()}
        for tp in self.trace.catalog.tracepoints:
            if tp.name not in out and not tp.removed:
                out[tp.name] = [("time", "event time (ns)"), ("cpu", "CPU"), ("tid", "thread that emitted it")] + \
                    [(f.name, f.doc or f.type) for f in tp.fields]
        return out


def _checked(check, trace: Trace, text: str, option: str, what: str) -> None:  # noqa: ANN001
    """Run the CLI's check of a filter value, its error worded for `set`."""
    try:
        check(trace, [text])
    except UsageError as e:
        raise UsageError(str(e).replace(option, what, 1)) from None


def history_path() -> Path:
    """Where the shell keeps its history: $XDG_STATE_HOME/osvtrace/history
    (default ~/.local/state/osvtrace/history)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "osvtrace" / "history"
