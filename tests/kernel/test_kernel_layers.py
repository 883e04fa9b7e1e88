"""The kernel's layers include only downwards (kernel/README.md, "Layers").

Every `#include "..."` of kernel/ is resolved the way the Makefile's -I flags resolve it
(kernel/, kernel/include, kernel/arch/x64) and the including and included files' layers
are looked up in ALLOWED. A layer that needs something from a layer above it declares
an interface and the layer above registers into it (core/app.hh, core/trace_port.hh,
net/netdev.hh): the core never names an app or a driver.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

KERNEL = Path(__file__).resolve().parents[2] / "kernel"
SEARCH = (KERNEL, KERNEL / "include", KERNEL / "arch" / "x64")  # the Makefile's -I order
SOURCES = ("*.cc", "*.hh", "*.S")

# layer -> the layers its files may include (itself included). Read a row as "X may use".
ALLOWED = {
    "lib":     {"lib"},                                      # freestanding, also built on the host
    "include": {"include", "arch"},                          # trace/ring.hh takes trace_platform.hh
    "arch":    {"arch", "core", "lib", "include"},           # arch and core call each other
    "core":    {"core", "arch", "lib", "include"},
    "drivers": {"drivers", "net", "core", "arch", "lib", "include"},  # virtio-net is a net device
    "net":     {"net", "core", "arch", "lib", "include"},
    "apps":    {"apps", "net", "core", "arch", "lib", "include"},
}

_INCLUDE = re.compile(r'^\s*#\s*include\s+["<]([^">]+)[">]', re.M)


def layer_of(path: Path) -> str:
    return path.relative_to(KERNEL).parts[0]


def resolve(name: str, including: Path) -> Path | None:
    """The kernel file an include names, or None (a compiler header: <stdint.h>, <atomic>)."""
    for base in (including.parent, *SEARCH):
        p = base / name
        if p.is_file():
            return p.resolve()
    return None


def includes(path: Path) -> list[tuple[int, str, Path]]:
    text = path.read_text(errors="replace")
    out = []
    for m in _INCLUDE.finditer(text):
        target = resolve(m.group(1), path)
        if target is not None and KERNEL in target.parents:
            out.append((text.count("\n", 0, m.start()) + 1, m.group(1), target))
    return out


def violations(root: Path = KERNEL) -> list[str]:
    bad = []
    for pattern in SOURCES:
        for f in sorted(root.rglob(pattern)):
            src = layer_of(f)
            assert src in ALLOWED, f"{f.relative_to(KERNEL)}: layer {src!r} is not in the table; add its row"
            for line, name, target in includes(f):
                dst = layer_of(target)
                if dst not in ALLOWED[src]:
                    bad.append(f"{f.relative_to(KERNEL)}:{line}: {src} includes {dst} ({name})")
    return bad


def test_every_include_goes_down_a_layer():
    bad = violations()
    assert not bad, ("includes against the layering (a lower layer declares an interface, the upper one "
                     "registers: core/app.hh, core/trace_port.hh, net/netdev.hh):\n  " + "\n  ".join(bad))


def test_the_check_sees_includes():
    # Guards the check itself: it must resolve the includes it is meant to judge.
    main = KERNEL / "core" / "main.cc"
    layers = {layer_of(t) for _, _, t in includes(main)}
    assert {"core", "arch"} <= layers, layers
    ring = KERNEL / "include" / "trace" / "ring.hh"
    assert "arch" in {layer_of(t) for _, _, t in includes(ring)}


def test_a_core_file_naming_an_app_would_fail(tmp_path, monkeypatch):
    (tmp_path / "core").mkdir()
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "app.hh").write_text("#pragma once\n")
    (tmp_path / "core" / "main.cc").write_text('#include <stdint.h>\n#include "apps/app.hh"\n')
    monkeypatch.setattr(sys.modules[__name__], "KERNEL", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "SEARCH", (tmp_path,))
    assert violations(tmp_path) == ["core/main.cc:2: core includes apps (apps/app.hh)"]
