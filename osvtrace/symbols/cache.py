"""An ELF's tables, built once per ELF and kept in the per-user cache
($XDG_CACHE_HOME/osvtrace/symbols/KEY.npz, ~/.cache when unset), so a later run loads them in
milliseconds instead of parsing DWARF again.

KEY is the ELF's GNU build id when it has one (our kernel). OSv's loader.elf has none, so its
key is a hash of the whole file (xxh3-128): a file's identity is its content, and reading
OSv's 69 MB to hash it costs 0.03-0.3 s (idle to loaded), against the minutes of parsing it saves.
(size, mtime, path) would be cheaper but wrong both ways: a copy elsewhere would be parsed
again, and a rebuild within the mtime's resolution, or a file restored with its old mtime,
would be named from stale tables. A hash of a part would miss a change in the part left out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from osvtrace import resources
from osvtrace.symbols import build
from osvtrace.symbols.elf import build_id
from osvtrace.symbols.resolve import ElfSymbols
from osvtrace.symbols.tables import FORMAT, Tables

CHUNK = 8 << 20
NOTICE_BYTES = 16 << 20  # an ELF this big takes long enough to parse to say so (OSv's: ~2 min)
_loaded: dict[tuple[str, int, int], ElfSymbols] = {}  # (path, size, mtime_ns): one parse per process


def cache_dir() -> Path:
    return resources.cache_dir() / "symbols"


def content_key(path: Path) -> str:
    """The hash of a file's bytes, for ELFs without a build id."""
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def key_of(path: Path) -> tuple[str, str]:
    """(cache key, build id or '')."""
    bid = build_id(path)
    return (f"build-{bid}" if bid else f"content-{content_key(path)}"), bid


def load(path: str | os.PathLike) -> ElfSymbols:
    """The symbols of one ELF: from this process's memory, the cache, or parsed (and cached)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        from osvtrace.errors import UsageError

        raise UsageError(f"{p}: cannot read the ELF ({e.strerror})") from None
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo in _loaded:
        return _loaded[memo]
    key, bid = key_of(p)
    file = cache_dir() / f"{key}.v{FORMAT}.npz"
    tables = Tables.load(file) if file.is_file() else None
    if tables is None:
        if st.st_size > NOTICE_BYTES and sys.stderr.isatty():  # minutes of silence would look like a hang
            print(f"osvtrace: reading the symbols of {p} once (cached in {cache_dir()}) ...", file=sys.stderr,
                  flush=True)
        tables = build.build_tables(p)
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            tables.save(file)
            for old in file.parent.glob(f"{key}.v*.npz"):  # tables of an older format: never read again
                if old != file:
                    old.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only cache costs the next run a parse, nothing else
    syms = _loaded[memo] = ElfSymbols(tables, str(p), bid)
    return syms
