"""Addresses to names: functions, file:line and inlined frames from an ELF's DWARF, static
objects by symbol and member, cached per build; one interface whichever kernel recorded the
trace.

>>> from osvtrace.symbols import for_trace
>>> s = for_trace(trace)                    # or for_trace(trace, elf="build/kernel.elf")
>>> s.name_addresses(mutex_addrs)           # array of 'mutex_main::slots[1].m (0x1d3b40)'
>>> s.frames(return_addrs)                  # inline chains, as columns (Frames)

Modules: tables (the sorted arrays), elf and dies (reading them with pyelftools), build,
cache (per build id, .npz), resolve (vectorised lookups), objects (data addresses by member),
symbolizer (the interface and its three kinds), locate (`for_trace`: which ELF).
"""

from osvtrace.symbols.cache import load
from osvtrace.symbols.locate import find_kernel, for_trace
from osvtrace.symbols.resolve import ElfSymbols, Frames
from osvtrace.symbols.symbolizer import WAIT_OBJECTS, ElfNames, NoSymbols, Symbolizer, TraceNames, labels

__all__ = ["ElfNames", "ElfSymbols", "Frames", "NoSymbols", "Symbolizer", "TraceNames", "WAIT_OBJECTS",
           "find_kernel", "for_trace", "labels", "load"]
