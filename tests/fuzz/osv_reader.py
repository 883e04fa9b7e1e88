"""Fuzz the reader of real OSv's trace files (`osvtrace.open` on an OSVT dump or a gdb
tracefile: chunk scan, dictionary, the compiled record walk, arguments, strings, blobs,
frames, threads).

The first input byte picks a mode: bit 0 also builds the model and the summary over what
was decoded. Properties: any input either opens or raises OsvtraceError with one line naming
the file; an opened trace is time-ordered and every argument of every record is readable.

    python -m tests.fuzz.harness osv [libFuzzer options] [corpus dir]
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from osvtrace.errors import OsvtraceError

TMP = os.environ.get("OSVTRACE_FUZZ_TMP") or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
PATH = Path(TMP) / f"osvtrace-fuzz-osv-{os.getpid()}.dump"


def check_trace(path: Path, *, model: bool = False) -> None:
    """Open `path` and use all of it; raises AssertionError when a property fails."""
    import osvtrace

    try:
        t = osvtrace.open(path)
    except OsvtraceError as e:
        msg = str(e)
        assert msg and "\n" not in msg and str(path) in msg, f"not one line naming the file: {msg!r}"
        return
    with t:
        for w in t.warnings:
            assert isinstance(w, str) and "\n" not in w, w
        assert (np.diff(t.events.time) >= 0).all(), "events out of time order"
        for tp in t.catalog.tracepoints:
            idx = np.nonzero(t.events.tp == tp.id)[0]
            for f in tp.fields:
                assert len(t.field_values(f, t.events.row[idx])) == len(idx)
        if len(t):
            t.format_event(len(t) - 1)
            t.backtraces(np.arange(min(len(t), 50)))
        assert set(t.tids().tolist()) <= set(t.threads)
        if model:
            from osvtrace.model import Model
            from osvtrace.reports.summary import summary

            summary(t)
            m = Model(t)
            for name in ("events", "tracepoints", "lost", "sched_slice"):
                m.table(name)


def one_input(data: bytes) -> None:
    if not data:
        return
    PATH.write_bytes(data[1:])
    try:
        check_trace(PATH, model=bool(data[0] & 1))
    finally:
        PATH.unlink(missing_ok=True)
