"""Large numpy arrays backed by transparent huge pages.

Why: on the machines this project runs on (nested virtualisation), the first
touch of fresh anonymous memory costs about 2 ms per MB with 4 KiB pages, so
the page faults of a 10 M-event decode's output columns cost more than the
decoding. With MADV_HUGEPAGE the same memory faults in 2 MiB at a time, about
10x cheaper (docs/design.md has the measurement, and the case where fresh memory
is slow either way: memory the VM's host took back). Small arrays use numpy's
allocator as usual.
"""

from __future__ import annotations

import mmap

import numpy as np

THRESHOLD = 4 << 20


def columns(n: int, dtypes: tuple[np.dtype | type | str, ...]) -> list[np.ndarray]:
    """Uninitialised 1-D arrays of n items each, one per dtype, carved from one huge-page
    backed mapping when large together: a column too small for a huge page of its own
    (a 2-byte column of 1 M items) shares theirs instead of faulting in 4 KiB pages."""
    dts = [np.dtype(d) for d in dtypes]
    sizes = [-(-n * d.itemsize // 64) * 64 for d in dts]  # each column 64-byte aligned
    if sum(sizes) < THRESHOLD:
        return [np.empty(n, d) for d in dts]
    m = mmap.mmap(-1, sum(sizes), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            m.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass  # THP disabled: plain pages, just slower
    out, off = [], 0
    for d, size in zip(dts, sizes):
        out.append(np.frombuffer(m, d, n, off))
        off += size
    return out
