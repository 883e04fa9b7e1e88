"""One interface for naming addresses, whichever kernel and whatever the trace carries:
an ELF's DWARF (our kernel; OSv's loader.elf when given), the names a trace file carries
(an OSv dump's SYMB chunk, a tracefile's .symbols), or nothing (addresses stay addresses,
with a warning saying why). Callers use `for_trace` (osvtrace.symbols.locate) and never ask
which one they got.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from osvtrace.symbols.resolve import ElfSymbols, Frames, factorize

# Types a wait object is (ours and OSv's): an address that starts a struct and such an object
# inside it is named as the object (`slots[1].m`, not `slots[1]`).
WAIT_OBJECTS = ("mutex", "condvar", "wait_queue", "waitqueue", "event", "semaphore")


def labels(names: np.ndarray, addrs: np.ndarray) -> np.ndarray:
    """`name (0xADDR)` where a name is known, `0xADDR` elsewhere: how a named address is shown
    (the raw address always kept beside the name)."""
    u, inv = factorize(addrs)
    hexes = np.array([f"{int(x):#x}" for x in u.tolist()], object)[inv] if len(u) else np.empty(0, object)
    out = hexes.copy()
    known = names != ""
    if known.any():
        out[known] = names[known] + " (" + hexes[known] + ")"
    return out


class Symbolizer:
    """Names of code and data addresses. `source` says where the names come from ('' none);
    `warnings` what a user should be told (no ELF for this trace, ...)."""

    source: str = ""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def functions(self, addrs: np.ndarray) -> np.ndarray:
        """The function holding each code address; '' where unknown. Addresses are looked up as
        they are: for a return address pass address - 1 (the call), as addr2line wants."""
        return np.full(np.asarray(addrs).size, "", object)

    def frames(self, addrs: np.ndarray) -> Frames:
        """Each address's frames, innermost first (one per address where inlining is unknown)."""
        a = np.asarray(addrs, np.uint64).reshape(-1)
        n = len(a)
        return Frames(np.arange(n), np.zeros(n, np.int32), self.functions(a), np.full(n, "", object),
                      np.zeros(n, np.int32), np.zeros(n, bool))

    def objects(self, addrs: np.ndarray, want: tuple[str, ...] = WAIT_OBJECTS) -> np.ndarray:
        """The static object (symbol, index, member) at each data address; '' where unknown."""
        return np.full(np.asarray(addrs).size, "", object)

    def name_addresses(self, addrs: np.ndarray, want: tuple[str, ...] = WAIT_OBJECTS) -> np.ndarray:
        """Data addresses as shown: `slots[1].m (0x1d3ac0)`, or `0x...` where no name is known."""
        a = np.asarray(addrs, np.uint64).reshape(-1)
        return labels(self.objects(a, want), a)

    def name_code(self, addrs: np.ndarray) -> np.ndarray:
        """Code addresses as shown: `lockfree::mutex<...>::lock() (0x1133b0)`, or `0x...`."""
        a = np.asarray(addrs, np.uint64).reshape(-1)
        return labels(self.functions(a), a)


def gdb_no_symbol(name: str) -> bool:
    """gdb's answer for an address it cannot name, as loader.py wrote it into FILE.symbols: never a name."""
    return name.startswith("No symbol matches")


class _Names(Protocol):
    def symbol(self, addr: int) -> str | None: ...


class NoSymbols(Symbolizer):
    """Addresses only (no ELF for the trace): every name is ''."""

    def __init__(self, why: str = "") -> None:
        super().__init__()
        if why:
            self.warnings.append(why)


class TraceNames(Symbolizer):
    """The names a trace file carries (OSv: the dump's SYMB chunk, the tracefile's .symbols),
    through the trace's own `symbol(addr)` (a return address is looked up at addr - 1)."""

    def __init__(self, trace: _Names, source: str) -> None:
        super().__init__()
        self.trace = trace
        self.source = source

    def _each(self, addrs: np.ndarray, shift: int) -> np.ndarray:
        u, inv = factorize(addrs)
        names = np.array([self._one(int(x), shift) for x in u.tolist()] or [""], object)
        return names[inv] if len(u) else np.empty(0, object)

    def _one(self, addr: int, shift: int) -> str:
        if not addr:
            return ""  # 0 is "no object", never a name
        name = self.trace.symbol(addr + shift) or ""
        if gdb_no_symbol(name):
            return ""
        return name[:-4] if name.endswith("+0x0") else name

    # symbol() looks a return address up one byte back; here every address is looked up as it is
    def functions(self, addrs: np.ndarray) -> np.ndarray:
        return self._each(addrs, 1)

    def objects(self, addrs: np.ndarray, want: tuple[str, ...] = WAIT_OBJECTS) -> np.ndarray:
        return self._each(addrs, 1)


class ElfNames(Symbolizer):
    """An ELF's DWARF and symbol table; addresses it does not know go to `fallback` (an OSv
    app's frames, named by the trace's own symbols, when only loader.elf is given)."""

    def __init__(self, elf: ElfSymbols, fallback: Symbolizer | None = None) -> None:
        super().__init__()
        self.elf = elf
        self.fallback = fallback
        self.source = elf.name

    def _fill(self, names: np.ndarray, addrs: np.ndarray, how: str) -> np.ndarray:
        miss = names == ""
        if self.fallback is not None and miss.any():
            names = names.copy()
            names[miss] = getattr(self.fallback, how)(np.asarray(addrs, np.uint64).reshape(-1)[miss])
        return names

    def functions(self, addrs: np.ndarray) -> np.ndarray:
        return self._fill(self.elf.functions(addrs), addrs, "functions")

    def frames(self, addrs: np.ndarray) -> Frames:
        fr = self.elf.frames(addrs)
        if self.fallback is not None:
            miss = fr.function == ""
            if miss.any():
                fr.function[miss] = self.fallback.functions(np.asarray(addrs, np.uint64).reshape(-1)[fr.index[miss]])
        return fr

    def objects(self, addrs: np.ndarray, want: tuple[str, ...] = WAIT_OBJECTS) -> np.ndarray:
        return self._fill(self.elf.objects(addrs, want), addrs, "objects")
