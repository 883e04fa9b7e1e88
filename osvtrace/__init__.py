"""osvtrace: observability for an OSv-style unikernel.

>>> import osvtrace
>>> t = osvtrace.open("trace.osvt")
>>> t.events.time, t.events.cpu, t.events.tid, t.events.tp   # numpy columns, time order
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from osvtrace.catalog.schema import Catalog, default_catalog
from osvtrace.errors import OsvtraceError, TraceFormatError, UsageError
from osvtrace.format.trace import Events, Trace, open

try:
    __version__ = _version("osvtrace")   # declared once, in pyproject.toml
except PackageNotFoundError:   # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Catalog", "Events", "OsvtraceError", "Trace", "TraceFormatError", "UsageError", "default_catalog",
           "open", "__version__"]
