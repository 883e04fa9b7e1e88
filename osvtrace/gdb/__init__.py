"""gdb commands for the osvtrace kernel: `osv info threads`, `osv mutex`, `osv trace` ...

Loaded by gdb/osv.py inside gdb (this package needs gdb's `gdb` module). One
module per kernel subsystem, as Linux's scripts/gdb does: each has cached types,
generator walkers, then thin commands that only format.

  threads   osv info threads, $osv_thread(), $osv_current(), thread printer
  context   osv thread ID | restore | apply
  percpu    osv percpu
  sched     osv runqueue
  mutex     osv mutex, mutex and wait queue printers
  memory    osv memory
  dmesg     osv dmesg
  net       osv netchannels
  trace     osv trace [N], status, enable, disable, save
"""

from __future__ import annotations

import gdb  # type: ignore[import-not-found]
import gdb.printing  # type: ignore[import-not-found]

from osvtrace.gdb import common, context, dmesg, memory, mutex, net, percpu, sched, threads, trace

MODULES = (threads, context, percpu, sched, mutex, memory, dmesg, net, trace)


def register() -> None:
    common.OsvPrefix()
    common.OsvInfoPrefix()
    for m in MODULES:
        m.register()
    gdb.printing.register_pretty_printer(None, common.PRINTERS, replace=True)
    # A new ELF may bring other types: drop the caches.
    gdb.events.new_objfile.connect(lambda _ev: common.invalidate_caches())


register()
