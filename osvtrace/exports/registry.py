"""The export formats: each module registers itself here, the way a plugin would.

A format is a function ``write(model, out, opts) -> Result`` plus what the CLI needs
to know about it (one-line doc, whether it writes a file or a directory, which
filters make sense). Third-party packages add formats through the entry-point
group ``osvtrace.exports`` (each entry point is a module that calls :func:`register`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from osvtrace.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from osvtrace.exports.common import Options, Result
    from osvtrace.model import Model

Writer = Callable[["Model", "Path", "Options"], "Result"]

ALL_FILTERS = frozenset({"since", "until", "cpu", "thread", "tp"})


@dataclass(frozen=True)
class Format:
    name: str
    write: Writer
    doc: str  # one line, shown by `osvtrace export --help`
    suffix: str  # usual file suffix, or "/" when the output is a directory
    filters: frozenset[str]  # which of ALL_FILTERS apply

    @property
    def is_dir(self) -> bool:
        return self.suffix == "/"


FORMATS: dict[str, Format] = {}


def register(name: str, *, doc: str, suffix: str, filters: frozenset[str] = ALL_FILTERS - {"tp"}
             ) -> Callable[[Writer], Writer]:
    """Decorator: make ``write`` the exporter of format ``name``."""
    def deco(write: Writer) -> Writer:
        if name in FORMATS and FORMATS[name].write is not write:
            raise ValueError(f"export format {name!r} registered twice")
        bad = filters - ALL_FILTERS
        if bad:
            raise ValueError(f"export format {name!r}: unknown filters {sorted(bad)}")
        FORMATS[name] = Format(name, write, doc, suffix, frozenset(filters))
        return write
    return deco


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise UsageError(f"unknown export format {name!r}; formats: {', '.join(sorted(FORMATS))}") from None


def load_plugins() -> list[str]:
    """Import the modules of the ``osvtrace.exports`` entry points (each registers its
    formats). Returns the names of those that failed: a broken plugin must not take the
    built-in formats down with it."""
    from importlib.metadata import entry_points

    failed = []
    for ep in entry_points(group="osvtrace.exports"):
        try:
            ep.load()
        except Exception:
            failed.append(ep.name)
    return failed
