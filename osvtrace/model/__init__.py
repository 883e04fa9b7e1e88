"""The model: columnar tables derived from a decoded trace, built on first use.

>>> m = Model(osvtrace.open("trace.osvt"))
>>> m.table("sched_slice")["dur"].sum()
"""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.format.trace import Trace
from osvtrace.model import events as _events
from osvtrace.model import heap as _heap
from osvtrace.model import memory as _memory
from osvtrace.model import net as _net
from osvtrace.model import sched as _sched
from osvtrace.model import stacks as _stacks
from osvtrace.model import sync as _sync
from osvtrace.model import timed as _timed
from osvtrace.model.table import Column, Table, TableSpec
from osvtrace.symbols import Symbolizer, for_trace

SPECS: dict[str, TableSpec] = {s.name: s for s in (
    _events.EVENTS, _events.TRACEPOINTS, _sched.THREADS, _sched.SCHED_SLICE, _sched.THREAD_STATE, _sched.WAKEUP,
    _sync.MUTEX_WAIT, _sync.MUTEX_HOLD, _sync.HANDOFF, _net.PACKET_FLOW, _net.TCP_STATE, _timed.TIMED,
    _timed.TIMED_UNMATCHED, _memory.MEMORY_ALLOC, _memory.MEMORY_FREE, _events.LOST,
    _stacks.STACK, _stacks.STACK_FRAME, _stacks.EVENT_STACK)}


def _part(group: str, i: int) -> property:
    """A table that is one of several computed together (by the cached property `group`)."""
    return property(lambda self: getattr(self, group)[i])


class Model:
    """Tables of one trace. Each is computed once, when first asked for."""

    def __init__(self, trace: Trace, elf: str | os.PathLike | None = None):
        self.trace = trace
        self.elf = elf
        if elf is not None:
            self.symbols  # a wrong ELF is refused now, before any work (UsageError)

    @cached_property
    def symbols(self) -> Symbolizer:
        """Names of the trace's addresses (osvtrace.symbols.for_trace: the kernel's ELF, or what
        the trace carries; addresses only, with a warning, when neither is there)."""
        return for_trace(self.trace, self.elf)

    def name_addresses(self, addrs: np.ndarray) -> np.ndarray:
        """Data addresses as shown everywhere: `slots[1].m (0x1d3b40)`, a heap object by where it
        was allocated, `heap kv_store::kv_store()+0x40 (0x...)` (model/heap.py), `0x...` when
        unnamed."""
        from osvtrace.symbols.symbolizer import labels

        a = np.asarray(addrs, np.uint64).reshape(-1)
        return labels(self.object_names(a), a)

    def object_names(self, addrs: np.ndarray) -> np.ndarray:
        """The name of each data address ('' where none is known): its static object from the
        symbols, else the heap block holding it by where that was allocated."""
        from osvtrace.symbols.symbolizer import WAIT_OBJECTS

        a = np.asarray(addrs, np.uint64).reshape(-1)
        names = np.asarray(self.symbols.objects(a, WAIT_OBJECTS), object).copy()
        missing = names == ""
        if missing.any() and len(self.memory_alloc):
            names[missing] = self.heap.names(a[missing])
        return names

    @cached_property
    def heap(self) -> "_heap.HeapNames":
        """Traced allocations with stacks, naming the heap addresses inside them."""
        return _heap.HeapNames(self.trace, self.memory_alloc, self.stacks)

    def table(self, name: str) -> Table:
        if name not in SPECS:
            raise UsageError(f"no table {name!r}; tables: {', '.join(SPECS)}")
        return getattr(self, name)

    def names(self) -> list[str]:
        return list(SPECS)

    @cached_property
    def events(self) -> Table:
        return _events.events(self.trace)

    @cached_property
    def tracepoints(self) -> Table:
        return _events.tracepoints(self.trace)

    @cached_property
    def lost(self) -> Table:
        return _events.lost(self.trace)

    @cached_property
    def sched_slice(self) -> Table:
        return _sched.sched_slice(self.trace)

    @cached_property
    def thread_state(self) -> Table:
        return _sched.thread_state(self.trace, self.sched_slice)

    @cached_property
    def wakeup(self) -> Table:
        return _sched.wakeup(self.trace, self.sched_slice)

    @cached_property
    def threads(self) -> Table:
        return _sched.threads(self.trace, self.sched_slice)

    @cached_property
    def mutex_wait(self) -> Table:
        return _sync.mutex_waits(self.trace)

    @cached_property
    def mutex_hold(self) -> Table:
        return _sync.mutex_holds(self.trace)

    @cached_property
    def handoff(self) -> Table:
        return _sync.handoffs(self.trace)

    @cached_property
    def packet_flow(self) -> Table:
        return _net.packet_flow(self.trace)

    @cached_property
    def tcp_state(self) -> Table:
        return _net.tcp_state(self.trace)

    @cached_property
    def _timed(self) -> tuple[Table, Table]:
        return _timed.timed_tables(self.trace, self.lost)

    timed = _part("_timed", 0)
    timed_unmatched = _part("_timed", 1)

    @cached_property
    def _memory(self) -> tuple[Table, Table]:
        return _memory.memory_tables(self.trace)

    memory_alloc = _part("_memory", 0)
    memory_free = _part("_memory", 1)

    @cached_property
    def stacks(self) -> _stacks.Stacks:
        """The trace's distinct backtraces and each event's stack id, per tracepoint on first use."""
        return _stacks.Stacks(self.trace)

    @cached_property
    def stack(self) -> Table:
        self.stacks.all_events()
        return _stacks.stack_table(self.stacks)

    @cached_property
    def stack_frame(self) -> Table:
        self.stacks.all_events()
        return _stacks.stack_frame_table(self.stacks)

    @cached_property
    def event_stack(self) -> Table:
        return _stacks.event_stack_table(self.stacks)

__all__ = ["Column", "Model", "SPECS", "Table", "TableSpec"]
