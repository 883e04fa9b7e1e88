"""Tracepoint arguments read out of record slots: the one implementation behind a whole
trace's arguments (osvtrace.format.trace.Trace) and a live batch's (osvtrace.shell.live)."""

from __future__ import annotations

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, Field, Tracepoint
from osvtrace.format.base import field_column


class SlotArgs:
    """Arguments of records in an array of slots (a mapped file's), by slot row."""

    def __init__(self, slots: np.ndarray):
        self._raw = slots.view(np.uint8).reshape(-1, layout.SLOT_SIZE)
        self._columns: dict[tuple[int, str], np.ndarray] = {}

    def column(self, offset: int, dtype: np.dtype) -> np.ndarray:
        """Every slot seen as one value of `dtype` at byte `offset`: a strided view, so
        reading an argument is a single 1-D gather."""
        key = (offset, dtype.str)
        col = self._columns.get(key)
        if col is None:
            raw = self._raw
            col = np.ndarray((len(raw),), dtype, buffer=raw, offset=offset, strides=(layout.SLOT_SIZE,)) \
                if len(raw) else np.empty(0, dtype)
            self._columns[key] = col
        return col

    def values(self, f: Field, rows: np.ndarray) -> np.ndarray:
        """Values of one argument of the records starting at `rows`."""
        k, off = layout.physical(f.offset)
        if not f.is_blob:
            return self.column(off, f.dtype)[rows + k if k else rows]
        out = np.empty((len(rows), f.size), np.uint8)
        done = 0
        while done < f.size:  # a blob may span slots: copy it piece by piece
            k, off = layout.physical(f.offset + done)
            take = min(f.size - done, layout.SLOT_SIZE - off)
            out[:, done:done + take] = self._raw[rows + k, off:off + take]
            done += take
        # str: one fixed-width bytes value per event; bytes: an (n, size) uint8 array
        return out.view(f.dtype).reshape(-1) if f.type == "str" else out

    def of(self, tp: Tracepoint, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Every argument of records of one tracepoint, as columns by name."""
        return {f.name: self.values(f, rows) for f in tp.fields}

    def field(self, catalog: Catalog, tps: np.ndarray, rows: np.ndarray, name: str,
              fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The scalar argument `name` for events (tracepoint ids `tps`, slot rows `rows`) of
        every tracepoint that has one, `fill` elsewhere, and the mask of events carrying it."""
        return field_column(catalog, tps, rows, name, fill, self.values)
