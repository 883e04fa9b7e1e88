"""`osv memory` on OSv: physical memory and what is free (memory::free_memory)."""

from __future__ import annotations

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.kernels.osv.reading import int_var


def memory_cmd(arg: str, from_tty: bool) -> None:
    if arg.strip():
        raise OsvError("osv memory takes no arguments")
    try:
        total = int_var("memory::phys_mem_size")
        free = int_var("memory::free_memory")
    except OsvError as e:
        raise OsvError(f"{e}: OSv's data is not mapped yet (stopped in the BIOS or the boot loader?)") from None
    if not total:
        raise OsvError("memory::phys_mem_size is 0: OSv has not set up its memory yet (still booting)")
    mib = 1024 * 1024
    gdb.write(f"physical memory {total / mib:.1f} MiB, free {free / mib:.1f} MiB ({100 * free / total:.1f}%), "
              f"in use {(total - free) / mib:.1f} MiB\n")
