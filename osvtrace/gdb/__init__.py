"""gdb commands for the osvtrace kernel: `osv info threads`, `osv trace save FILE` ...

Loaded by gdb/osv.py inside gdb (this package needs gdb's `gdb` module). One
module per kernel subsystem, as Linux's scripts/gdb does: each has cached types,
generator walkers, then thin commands that only format.
"""

from __future__ import annotations

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import common, threads, trace

MODULES = (threads, trace)


def register() -> None:
    common.OsvPrefix()
    common.OsvInfoPrefix()
    for m in MODULES:
        m.register()
    # A new ELF may bring other types: drop the caches.
    gdb.events.new_objfile.connect(lambda _ev: common.invalidate_caches())


register()
