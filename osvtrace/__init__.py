"""osvtrace: observability for an OSv-style unikernel.

>>> import osvtrace
>>> t = osvtrace.open("trace.osvt")
>>> t.events.time, t.events.cpu, t.events.tid, t.events.tp   # numpy columns, time order
"""

from osvtrace.errors import OsvtraceError, TraceFormatError, UsageError
from osvtrace.schema import Catalog, default_catalog
from osvtrace.trace import Events, Trace, open

__version__ = "0.1.0"
__all__ = ["Catalog", "Events", "OsvtraceError", "Trace", "TraceFormatError", "UsageError", "default_catalog",
           "open", "__version__"]
