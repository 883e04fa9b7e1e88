"""Exports: a trace's tables and records in other tools' formats.

Each format is a module that registers itself in :mod:`osvtrace.exports.registry`
(perfetto, chrome, pcap, parquet, ctf, folded, pprof); packages can add more through the
``osvtrace.exports`` entry-point group.

>>> from osvtrace.exports import export
>>> export(Model(osvtrace.open("t.osvt")), "perfetto", "t.pftrace")
"""

from __future__ import annotations

import os
from pathlib import Path

from osvtrace.exports import chrome, ctf, folded, parquet, pcap, perfetto, pprof  # noqa: F401  (registration)
from osvtrace.exports.common import Options, Result
from osvtrace.exports.registry import FORMATS, Format, get, load_plugins, register
from osvtrace.model import Model


def export(model: Model, fmt: str, out: str | os.PathLike, opts: Options | None = None) -> Result:
    """Write ``model``'s trace as format ``fmt`` to ``out`` (a file or a directory, by format)."""
    return get(fmt).write(model, Path(out), opts or Options())


__all__ = ["FORMATS", "Format", "Options", "Result", "export", "get", "load_plugins", "register"]
