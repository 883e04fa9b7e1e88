"""What differs between the kernels osvtrace observes: one small module per kernel.

Each module says, as data, where the kernel keeps its trace buffers, how it is booted and
stopped, and how its command line turns tracepoints on. The mechanisms (vm/ boots, capture/
reads buffers, gdb/ walks structures, format/ decodes) read these facts instead of testing
which kernel they run: a second kernel is a second module here, not `if kernel == ...`
spread through the code. This room imports only the floor, so every room may read it.
"""

from __future__ import annotations

from collections.abc import Container

from osvtrace.errors import UsageError
from osvtrace.kernels import osv, reference
from osvtrace.kernels.base import Kernel

KERNELS: dict[str, Kernel] = {k.name: k for k in (reference.KERNEL, osv.KERNEL)}


def get(name: str) -> Kernel:
    """The kernel called `name` (what --kernel takes)."""
    try:
        return KERNELS[name]
    except KeyError:
        raise UsageError(f"no kernel {name!r}; kernels: {', '.join(KERNELS)}") from None


def names() -> list[str]:
    return list(KERNELS)


def of_elf(symbols: Container[str]) -> Kernel | None:
    """The kernel whose ELF defines these symbols (None: neither)."""
    for k in KERNELS.values():
        if k.elf_marker in symbols:
            return k
    return None
