"""The house's rules, checked: every module imports, there are no import circles, and imports
follow the data path (transport -> file -> decode -> model -> views) through the rooms in
ALLOWED below. docs/design.md draws the same table as a picture."""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "osvtrace"

# The house as arrows: room -> the rooms right below it. A room may import what its arrows
# reach, directly or further down (the closure), and the floor (errors, resources, progress).
# An arrow in EXCEPTIONS reaches only the modules named there, and nothing beyond them.
# docs/design.md draws these arrows (test_design_md_draws_this_table).
BASE = {"errors", "resources", "progress"}
ARROWS: dict[str, set[str]] = {
    "catalog": set(),                          # schema, record layout, codegen
    "kernels": set(),                          # per kernel: where its buffers are, how it boots
    "symbols": set(),                          # addresses to names from an ELF's DWARF, cached per build
    "format": {"catalog"},                     # .osvt writer, reader, decoder
    "vm": {"catalog", "kernels"},              # QEMU, kernel build (regenerates code), gdb/MI
    "capture": {"format", "vm"},               # transports and the recorder
    "model": {"format", "kernels", "symbols"}, # tables derived from events; names of their addresses
    "reports": {"model"},                      # the registry and its one renderer
    "query": {"reports"},                      # SQL; renders with reports' renderer
    "exports": {"query"},
    "gdb": {"capture", "model"},               # inside gdb: reads rings as capture does
    "viewer": {"reports"},
    "shell": {"query", "viewer", "capture"},   # capture: the live shell drives a recording's ctl socket
    "loadgen": set(),
    "cli": {"exports", "gdb", "shell", "loadgen", "api"},   # the top: everything below
    "api": {"format"},                         # osvtrace/__init__.py: osvtrace.open, Trace, Catalog
}
EXCEPTIONS = {("shell", "capture"): {"osvtrace.capture.ctl"}}   # arrow -> the only modules it reaches
OTHER = {"errors": set(), "resources": {"errors"}, "progress": set(), "__main__": {"cli"}}   # the floor; python -m


def _closure(room: str) -> set[str]:
    seen: set[str] = set()
    todo = [b for b in ARROWS.get(room, OTHER.get(room, set())) if (room, b) not in EXCEPTIONS]
    while todo:
        b = todo.pop()
        if b not in seen:
            seen.add(b)
            todo += [c for c in ARROWS.get(b, OTHER.get(b, set())) if (b, c) not in EXCEPTIONS]
    return seen


ALLOWED = {r: _closure(r) | {b for (a, b) in EXCEPTIONS if a == r} | (BASE if r not in BASE else OTHER[r])
           for r in [*ARROWS, *OTHER]}
INSIDE_GDB = "osvtrace.gdb"   # modules that import gdb's own `gdb` module: checked statically only


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        mods[".".join(parts).removesuffix(".__init__")] = p
    return mods


MODULES = _modules()


def _room(mod: str) -> str:
    parts = mod.split(".")
    return "api" if len(parts) == 1 else parts[1]


def _imports(mod: str) -> set[str]:
    """Every osvtrace module `mod` imports, at module level or inside functions."""
    out = set()
    for n in ast.walk(ast.parse(MODULES[mod].read_text())):
        if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module and n.module.split(".")[0] == "osvtrace":
            for a in n.names:   # `from P import m` names module P.m when there is one, else something of P
                sub = f"{n.module}.{a.name}"
                out.add(sub if sub in MODULES else n.module)
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names if a.name in MODULES}
        elif isinstance(n, ast.ImportFrom) and n.level:
            raise AssertionError(f"{mod}: relative import; name the module in full")
    out.discard(mod)
    return {m for m in out if m in MODULES}


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_room_is_in_the_table():
    assert {_room(m) for m in MODULES} <= set(ALLOWED), "a new room: add it to ALLOWED with its floor"


def test_imports_follow_the_data_path():
    wrong = []
    for mod, deps in sorted(GRAPH.items()):
        a = _room(mod)
        for dep in sorted(deps):
            b = _room(dep)
            if a == b:
                continue
            allowed = ALLOWED[a]
            only = EXCEPTIONS.get((a, b))
            if b not in allowed or (only is not None and dep not in only):
                wrong.append(f"{mod} imports {dep} ({a} -> {b})")
    assert not wrong, "imports against the data path:\n" + "\n".join(wrong)


def test_there_are_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:   # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for m in sorted(GRAPH):
        if m not in index:
            visit(m)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if m != "osvtrace.__main__"   # runs the CLI
                                        and m != INSIDE_GDB and not m.startswith(INSIDE_GDB + ".")))
def test_every_module_imports(mod):
    importlib.import_module(mod)


def mermaid() -> str:
    """ARROWS drawn as a Mermaid flowchart, the picture of the house in docs/design.md."""
    lines = ["flowchart TD"]
    for a, below in ARROWS.items():
        for b in sorted(below, key=list(ARROWS).index) or ["floor"]:
            lines.append(f"    {a} -->{'|ctl only|' if (a, b) in EXCEPTIONS else ''} {b}")
    lines.append('    api["api: osvtrace/__init__.py"]')
    lines.append('    floor["errors · resources · progress"]')
    return "\n".join(lines)


def test_design_md_draws_this_table():
    doc = (PKG.parent / "docs" / "design.md").read_text()
    want = "```mermaid\n" + mermaid() + "\n```"
    assert want in doc, "docs/design.md's picture of the house is stale: paste `python -m tests.test_layering`:\n" + want



def test_no_test_imports_another_test_module():
    # what tests share lives in tests/support/ (or conftest.py's fixtures), never in a test module
    tests = PKG.parent / "tests"
    wrong = []
    for p in sorted(tests.rglob("*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            names = [n.module] if isinstance(n, ast.ImportFrom) and n.module else \
                [a.name for a in n.names] if isinstance(n, ast.Import) else []
            wrong += [f"{p.relative_to(tests.parent)} imports {m}" for m in names
                      if m.startswith("tests.") and (m.rsplit(".", 1)[-1].startswith("test_") or m == "tests.conftest")]
    assert not wrong, "\n".join(wrong)


if __name__ == "__main__":
    print("```mermaid\n" + mermaid() + "\n```")
