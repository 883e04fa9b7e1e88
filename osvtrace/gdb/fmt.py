"""Formatting for the osv commands: NUL-padded names, durations, aligned tables.

Plain Python: the one module of the package that does not use gdb itself.
"""

from __future__ import annotations


def clean_text(raw: bytes) -> str:
    """A NUL-padded char array as printable text (a name being rewritten may hold junk)."""
    s = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in s)


def format_seconds(s: float) -> str:
    if s >= 100:
        return f"{s:.0f}s"
    if s >= 1:
        return f"{s:.2f}s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f}ms"
    return f"{s * 1e6:.0f}us"


def table(rows: list[tuple], header: tuple[str, ...]) -> str:
    """Rows as aligned text columns (numbers right-aligned)."""
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [bool(rows) and all(isinstance(r[i], int) for r in rows) for i in range(len(header))]
    out = []
    for r in cells:
        out.append("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip())
    return "\n".join(out) + "\n"
