"""What every export format shares: options, the result, row selection, output files, progress."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.format.trace import Trace
from osvtrace.model.filters import Filter, thread_ids
from osvtrace.model.table import Table

# progress(done, total, what): called now and then during long exports; the CLI draws a bar
ProgressFn = Callable[[int, int, str], None]


def _no_progress(done: int, total: int, what: str) -> None:
    pass


@dataclass
class Options:
    """How to export: the selection (same meaning as the report filters) and format extras."""

    filter: Filter = field(default_factory=Filter)
    trace_id: str = ""  # parquet: value of the `trace` column (default: the file's stem)
    layout: str = "flat"  # parquet: flat (OUT/TABLE.parquet) or by-table (OUT/TABLE/TRACE_ID.parquet)
    force: bool = False  # directory formats: replace an existing non-empty output directory
    profile: str = "prof"  # folded, pprof: prof, prof-wait, prof-lock or prof-hold (osvtrace.reports.profiles)
    metric: str = ""  # folded: count or ns ("": the profile's own, ns for time profiles)
    group_by: str = "none"  # folded, pprof: thread, cpu, lock, tracepoint (an outer frame / a label)
    progress: ProgressFn = _no_progress


@dataclass
class Result:
    """What an export wrote: the path, counts by kind (for the CLI summary and tests), notes."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # warnings worth a line on stderr

    def summary(self) -> str:
        parts = ", ".join(f"{v:,} {k}" for k, v in self.counts.items())
        return f"{self.path}: {parts}" if parts else str(self.path)


# ---------------------------------------------------------------- selection


class Selection:
    """A Filter resolved against one trace: time window, CPU set, thread set.

    Exports keep the model's tables whole (built from every event, so a slice's
    thread is known even when its switch-in was emitted by a filtered-out thread)
    and select *rows*: overlapping the window, on the CPUs (tables with a ``cpu``
    column), involving the threads (any column holding thread ids). Tables without
    such a column are not narrowed by that criterion.
    """

    def __init__(self, trace: Trace, flt: Filter | None):
        flt = flt or Filter()
        self.since = flt.since
        self.until = flt.until
        if flt.cpus:
            bad = [c for c in flt.cpus if c < 0 or c >= max(trace.ncpus, 1)]
            if bad:
                raise UsageError(f"--cpu {bad[0]}: the trace has CPUs 0..{trace.ncpus - 1}")
        self.cpus = np.array(sorted(set(flt.cpus)), np.int64) if flt.cpus else None
        self.tids = thread_ids(trace, flt.threads).astype(np.int64) if flt.threads else None

    @property
    def everything(self) -> bool:
        return self.since is None and self.until is None and self.cpus is None and self.tids is None

    def cpu_ok(self, cpu: np.ndarray) -> np.ndarray:
        return np.ones(len(cpu), bool) if self.cpus is None else np.isin(cpu, self.cpus)

    def tid_ok(self, *tids: np.ndarray) -> np.ndarray:
        n = len(tids[0])
        if self.tids is None:
            return np.ones(n, bool)
        m = np.zeros(n, bool)
        for t in tids:
            m |= np.isin(t, self.tids)
        return m

    def points(self, t: np.ndarray) -> np.ndarray:
        """Mask of instants inside the window [since, until)."""
        m = np.ones(len(t), bool)
        if self.since is not None:
            m &= t >= self.since
        if self.until is not None:
            m &= t < self.until
        return m

    def spans(self, start: np.ndarray, dur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mask of intervals overlapping the window, start and duration clipped to it)."""
        end = start + dur
        m = np.ones(len(start), bool)
        if self.since is not None:
            m &= (end > self.since) | ((dur == 0) & (start >= self.since))
            start = np.maximum(start, self.since)
        if self.until is not None:
            m &= start < self.until
            end = np.minimum(end, self.until)
        return m, start, np.maximum(end - start, 0)

    def rows(self, t: Table) -> np.ndarray:
        """Mask of a model table's rows this selection keeps (see the class doc)."""
        cols = t.columns
        m = np.ones(len(t), bool)
        if self.since is not None or self.until is not None:
            if "start" in cols and "dur" in cols:
                m &= self.spans(cols["start"], cols["dur"])[0]
            elif "time" in cols:
                m &= self.points(cols["time"]) | (cols["time"] < 0)  # unknown times stay
        if self.cpus is not None and "cpu" in cols:
            m &= self.cpu_ok(cols["cpu"])
        if self.tids is not None:
            tid_cols = [cols[c.name] for c in t.spec.columns if c.unit == "tid"]
            if tid_cols:
                m &= self.tid_ok(*tid_cols)
        return m

    def events(self, trace: Trace, tps: list[str] | None = None) -> np.ndarray:
        """Mask over the trace's events (for formats that export records, not tables)."""
        return Filter(list(tps or []), [int(c) for c in self.cpus] if self.cpus is not None else [],
                      [str(int(t)) for t in self.tids] if self.tids is not None else [],
                      self.since, self.until).mask(trace)


# ---------------------------------------------------------------- output


def check_file_output(out: Path) -> None:
    """Fail early, in one line, when ``out`` cannot be written as a file."""
    if out.is_dir():
        raise UsageError(f"{out}: is a directory; give a file name with -o")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"{out}: {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UsageError(f"{out}: not writable")


def check_output(out: Path, is_dir: bool) -> None:
    """Fail early (before decoding a big trace) when ``out`` cannot be written."""
    if not is_dir:
        check_file_output(out)
        return
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory; this format writes a directory")
    probe = out if out.exists() else out.parent if str(out.parent) else Path(".")
    while not probe.exists():  # a directory to be created (with its parents): check the first that exists
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{out}: not writable")


@contextlib.contextmanager
def atomic_file(out: Path) -> Iterator[IO[bytes]]:
    """Write to OUT.partial and rename on success, so a failed export leaves no half file."""
    check_file_output(out)
    tmp = out.with_name(out.name + ".partial")
    try:
        f = open(tmp, "wb")
    except OSError as e:
        raise UsageError(f"{out}: cannot write: {e.strerror}") from None
    try:
        with f:
            yield f
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"{out}: cannot write: {e.strerror}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prepare_dir(out: Path, force: bool, ours: Callable[[Path], bool]) -> None:
    """Create the output directory. An existing non-empty one is refused unless ``force``;
    with ``force`` only the files this format writes (``ours``) are removed first."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory; this format writes a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UsageError(f"{out}: directory is not empty; use --force to replace its export files")
        for p in list(out.iterdir()):
            if ours(p):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".osvtrace-write-test"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise UsageError(f"{out}: cannot write: {e.strerror}") from None
