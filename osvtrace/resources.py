"""Where the package's data lives: the one module that knows.

The repository keeps its data at the top level (kernel/, tracepoints/, viewer/, gdb/); a built
wheel carries the same trees as package data under osvtrace/_data/ (setup.py copies them there,
MANIFEST.in puts them into the sdist). Running from a source tree (a checkout, or an editable
install of one) uses the checkout's directories; an installed package uses its _data/. Every
other module asks here instead of computing paths from its own ``__file__``.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from osvtrace.errors import OsvtraceError

# The trees shipped as package data, by their names at the repository's top level.
DATA_TREES = ("kernel", "tracepoints", "viewer", "gdb")

_PACKAGE_DIR = Path(__file__).resolve().parent


class ResourceMissing(OsvtraceError):
    """A data file the package should carry is not there (a broken install)."""


def checkout() -> Path | None:
    """The source tree this package runs from, or None when it runs installed."""
    root = _PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "kernel" / "Makefile").is_file() \
            and (root / "tracepoints").is_dir():
        return root
    return None


def data_dir(name: str) -> Path:
    """The directory of one data tree (kernel, tracepoints, viewer or gdb) as a real path."""
    if name not in DATA_TREES:
        raise ValueError(f"unknown data tree {name!r}")
    root = checkout()
    if root is not None:
        return root / name
    res = files("osvtrace") / "_data" / name
    if not isinstance(res, Path):  # a zip import: the trees must be real files (make, gdb, the server)
        raise ResourceMissing(f"osvtrace's data ({name}/) is not on the file system ({res}); install the wheel with pip")
    if not res.is_dir():
        raise ResourceMissing(f"{res}: missing: this osvtrace install lacks its package data "
                              "(reinstall it from the wheel or the sdist)")
    return res


def viewer_dir() -> Path:
    return data_dir("viewer")


def schema_dir() -> Path:
    """The tracepoint catalog: tracepoints/*.toml."""
    return data_dir("tracepoints")


def gdb_script() -> Path:
    """The entry script for `gdb -x`."""
    return data_dir("gdb") / "osv.py"


def kernel_sources() -> Path:
    return data_dir("kernel")


def proto_schema() -> Path:
    """osvt.proto, the schema of the .osvt metadata (it lives in the package in both cases)."""
    return Path(str(files("osvtrace.format.proto") / "osvt.proto"))


def cache_dir() -> Path:
    """The per-user cache: $XDG_CACHE_HOME/osvtrace, or ~/.cache/osvtrace."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "osvtrace"


def kernel_cache() -> Path:
    """Where an installed osvtrace builds kernels: one directory per build key, and kernel.elf,
    a link to the latest build (osvtrace.vm.kernel_build)."""
    return cache_dir() / "kernel"


def default_kernel() -> Path:
    """The kernel ELF booted when none is named: the checkout's build/kernel.elf, or (installed)
    the cache's link to its latest build."""
    root = checkout()
    return root / "build" / "kernel.elf" if root else kernel_cache() / "kernel.elf"


def osv_build_tree() -> Path:
    """Where ../shared/osv/build.sh builds OSv ($OSV_BUILD_DIR, else ~/.cache/osv-build): the
    OSv tree under it (vm.osv_image boots its image; symbols.apps reads its manifests)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("OSV_BUILD_DIR") or Path(cache) / "osv-build") / "osv"
