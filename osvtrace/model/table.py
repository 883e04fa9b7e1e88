"""A table: named numpy columns of equal length, with a documented schema.

Tables are what analyses produce and what SQL, reports, exports and the viewer
consume. Columns are numpy arrays; conversion to Arrow (for DuckDB and Parquet)
is zero-copy for numeric columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # numpy dtype string
    doc: str
    unit: str = ""  # ns, tid, cpu, addr ...


@dataclass(frozen=True)
class TableSpec:
    """A table's documented shape (docs/tables.md is generated from these)."""

    name: str
    doc: str
    columns: tuple[Column, ...]

    def empty(self) -> "Table":
        return Table(self, {c.name: np.empty(0, c.dtype) for c in self.columns})


@dataclass
class Table:
    spec: TableSpec
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [c.name for c in self.spec.columns]
        if list(self.columns) != names:
            raise ValueError(f"table {self.spec.name}: columns {list(self.columns)} != spec {names}")
        lens = {len(v) for v in self.columns.values()}
        if len(lens) > 1:
            raise ValueError(f"table {self.spec.name}: columns of different lengths {lens}")
        for c in self.spec.columns:
            v = self.columns[c.name]
            if v.dtype != np.dtype(c.dtype):
                self.columns[c.name] = v.astype(c.dtype)

    @property
    def name(self) -> str:
        return self.spec.name

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def take(self, idx: np.ndarray) -> "Table":
        return Table(self.spec, {k: v[idx] for k, v in self.columns.items()})

    def to_arrow(self):  # -> pyarrow.Table
        import pyarrow as pa

        return pa.table({k: pa.array(v) for k, v in self.columns.items()})

    def rows(self, limit: int | None = None) -> Iterator[dict]:
        """Row dicts, for printing only."""
        n = len(self) if limit is None else min(limit, len(self))
        cols = {k: v[:n].tolist() for k, v in self.columns.items()}
        for i in range(n):
            yield {k: cols[k][i] for k in cols}


def table(spec: TableSpec, **columns: np.ndarray) -> Table:
    """Build a table in the spec's column order."""
    return Table(spec, {c.name: columns[c.name] for c in spec.columns})
