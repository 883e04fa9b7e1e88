"""Large numpy arrays backed by transparent huge pages.

Why: on the machines this project runs on (nested virtualisation), the first
touch of fresh anonymous memory costs about 2 ms per MB with 4 KiB pages, so
the page faults of a 10 M-event decode's output columns cost more than the
decoding. With MADV_HUGEPAGE the same memory faults in 2 MiB at a time, about
10x cheaper (docs/design.md has the measurement). Small arrays use numpy's
allocator as usual.
"""

from __future__ import annotations

import mmap

import numpy as np

THRESHOLD = 4 << 20


def empty(n: int, dtype: np.dtype | type | str) -> np.ndarray:
    """An uninitialised 1-D array of n items, huge-page backed when large."""
    dt = np.dtype(dtype)
    nbytes = n * dt.itemsize
    if nbytes < THRESHOLD:
        return np.empty(n, dt)
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            m.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass  # THP disabled: plain pages, just slower
    return np.frombuffer(m, dt, n)
