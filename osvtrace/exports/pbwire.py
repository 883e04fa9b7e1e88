"""Protobuf wire format with numpy: many small messages of the same shape at once.

A message whose fields all have a fixed byte length (for a given shape: the length
of each varint) is a row of a uint8 matrix; fields are column ranges, written for
every row at once. Rows of different shapes go to different matrices; the caller
groups rows by shape (:func:`group_by`). The protobuf library stays the reference:
tests parse the output with the generated classes.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

# a varint of value v takes k bytes when v < 2**(7k)
_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], np.uint64)


def varint_len(v: np.ndarray) -> np.ndarray:
    """Bytes of each value's varint encoding (1..10), as uint8."""
    v = np.asarray(v).astype(np.uint64, copy=False)
    if not len(v) or int(v.max()) < 128:  # the common case of small ids: all one byte
        return np.ones(len(v), np.uint8)
    return (np.searchsorted(_LIMITS, v, side="right") + 1).astype(np.uint8)


def varint(value: int) -> bytes:
    """One varint (for the few scalar lengths and tags)."""
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    """Field key: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32."""
    return varint((field << 3) | wire_type)


class Rows:
    """A uint8 matrix of messages of one shape, described field by field, left to right.

    Constant bytes (tags, lengths, constant values) go into a template row; varying
    fields are remembered. :meth:`done` copies the template into every row at once and
    then writes each varying field's columns."""

    def __init__(self, n: int, width: int):
        self.n = n
        self.col = 0
        self._template = np.zeros(width, np.uint8)
        self._fields: list[tuple[int, np.ndarray, int]] = []  # (column, values, kind: -1 byte, 0 fixed64, k varint)

    def const(self, data: bytes) -> None:
        """The same bytes in every row."""
        self._template[self.col:self.col + len(data)] = np.frombuffer(data, np.uint8)
        self.col += len(data)

    def byte(self, v: np.ndarray) -> None:
        self._fields.append((self.col, v, -1))
        self.col += 1

    def varint(self, v: np.ndarray, length: int) -> None:
        """Values whose varint is exactly ``length`` bytes long (the row group's shape)."""
        self._fields.append((self.col, v, length))
        self.col += length

    def fixed64(self, v: np.ndarray) -> None:
        self._fields.append((self.col, v, 0))
        self.col += 8

    def done(self) -> np.ndarray:
        assert self.col == len(self._template), (self.col, len(self._template))
        m = np.empty((self.n, self.col), np.uint8)
        m[:] = self._template
        for col, v, kind in self._fields:
            if kind < 0:
                m[:, col] = v
            elif kind == 0:
                m[:, col:col + 8] = np.ascontiguousarray(v, "<u8").view(np.uint8).reshape(-1, 8)
            else:
                v = np.asarray(v)
                v = v.view(np.uint64) if v.dtype == np.int64 else v.astype(np.uint64, copy=False)
                for k in range(kind):
                    b = (v >> np.uint64(7 * k)) & np.uint64(0x7F) if k else v & np.uint64(0x7F)
                    if k < kind - 1:
                        b |= np.uint64(0x80)
                    m[:, col + k] = b
        return m


def group_by(shape: np.ndarray, chunk: int = 1 << 20) -> Iterator[tuple[int, np.ndarray]]:
    """(shape value, row indices) for each distinct shape, at most ``chunk`` rows at a time."""
    if not len(shape):
        return
    order = np.argsort(shape, kind="stable")
    s = shape[order]
    cuts = np.nonzero(s[1:] != s[:-1])[0] + 1
    bounds = np.concatenate(([0], cuts, [len(s)]))
    for a, b in zip(bounds[:-1], bounds[1:]):
        for c in range(int(a), int(b), chunk):
            yield int(s[a]), order[c:min(int(b), c + chunk)]
