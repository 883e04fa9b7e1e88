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
  net       osv netchannels, net channel printer
  trace     osv trace [N], status, enable, disable, save
  kernels   other kernels (kernels/osv.py: real OSv), chosen by a symbol of the ELF

Below them, shared by several (lowest last; nothing imports upwards, and
tests/gdb/test_gdb_imports.py fails on an import circle):

  threadtable  every thread and CPU read at one stop (Snapshot)
  stacks       code addresses named by gdb, gdb's unwinder bounded (both kernels' stacks)
  stacktext    stacks as text: frames as `bt` prints them, why a stack ends (plain Python)
  thread       a `thread *` named as `5 (holder)` (below percpu, which names threads)
  printers     the `osv` pretty-printer collection
  clock        the kernel's TSC clock, times since boot
  statics      objects in static storage, by address or by type
  lists        bounded walkers of lists and lock-free queues
  guestmem     guest memory: small reads through gdb, bulk ones through pmemsave
  debuginfo    types, symbols and layouts from the ELF's debug info
  commands     the `osv` prefixes, the command base class, OsvError
  fmt          text: names, durations, aligned tables (plain Python)
"""

from __future__ import annotations

import gdb  # type: ignore[import-not-found]
import gdb.printing  # type: ignore[import-not-found]

from osvtrace.gdb import (commands, context, debuginfo, dmesg, memory, mutex, net, percpu, printers, sched, threads,
                          trace)
from osvtrace.gdb.kernels import osv as osv_kernel

MODULES = (threads, context, percpu, sched, mutex, memory, dmesg, net, trace, osv_kernel)


def register() -> None:
    commands.OsvPrefix()
    commands.OsvInfoPrefix()
    for m in MODULES:
        m.register()
    gdb.printing.register_pretty_printer(None, printers.PRINTERS, replace=True)
    # A new ELF may bring other types: drop the caches.
    gdb.events.new_objfile.connect(lambda _ev: debuginfo.invalidate_caches())
    debuginfo.on_invalidate(commands.forget_kernel)  # another ELF may be another kernel


register()
