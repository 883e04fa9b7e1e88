"""The gdb package's imports form a DAG (ARCHITECTURE.md: no import circles).

The modules need gdb's `gdb` module, so they are checked statically: every import of
osvtrace/gdb/*.py is parsed (at any depth, so an import inside a function counts) and
the graph of the package's own modules must have no cycle. Imports inside functions are
not allowed at all here: they are how a cycle hides. The last test loads the package in
a real gdb, as gdb/osv.py does, and finds every module imported.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "osvtrace" / "gdb"
NAME = "osvtrace.gdb"


def modules() -> list[str]:
    """The package's modules, dotted below it (`kernels.osv`); a subpackage is its __init__."""
    out = []
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if parts:
            out.append(".".join(parts))
    return sorted(out)


def source(module: str) -> Path:
    p = PKG / (module.replace(".", "/") + ".py")
    return p if p.exists() else PKG / module.replace(".", "/") / "__init__.py"


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported osvtrace module, line, inside a function or class) for each import."""
    tree = ast.parse(source(module).read_text(), f"{module}.py")
    packages = {m for m in modules() if source(m).name == "__init__.py"}
    out = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, nested) for a in child.names if a.name.startswith("osvtrace"))
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and (child.module or "").startswith("osvtrace"):
                base = child.module or ""
                if base == NAME or base[len(NAME) + 1:] in packages:  # from osvtrace.gdb import a, b: submodules
                    out.extend((f"{base}.{a.name}", child.lineno, nested) for a in child.names)
                else:
                    out.append((base, child.lineno, nested))
            elif isinstance(child, ast.ImportFrom) and child.level:
                raise AssertionError(f"{module}.py:{child.lineno}: relative import (write osvtrace.gdb...)")
            visit(child, inner)

    visit(tree, False)
    return out


def graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (the package's __init__ left out: it is
    the loader on top, importing every command module)."""
    own = set(modules())
    g: dict[str, set[str]] = {}
    for m in own:
        g[m] = set()
        for target, _line, _nested in imports(m):
            if target.startswith(NAME + "."):
                dep = target[len(NAME) + 1:]
                while dep not in own and "." in dep:  # from osvtrace.gdb.debuginfo import Layout
                    dep = dep.rsplit(".", 1)[0]
                assert dep in own, f"{m}.py imports {target}, which does not exist"
                g[m].add(dep)
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def dfs(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(g.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                got = dfs(d)
                if got:
                    return got
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state:
            got = dfs(n)
            if got:
                return got
    return None


def test_the_gdb_package_has_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle in osvtrace/gdb: " + " -> ".join(cycle or [])


def test_no_imports_inside_functions():
    nested = [f"{m}.py:{line}: {target}" for m in modules() + [""]
              for target, line, inner in imports(m) if inner]
    assert not nested, ("imports inside functions (put what both sides need in a lower module): "
                        + ", ".join(nested))


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_docstring_names_every_module():
    doc = ast.get_docstring(ast.parse((PKG / "__init__.py").read_text())) or ""
    listed = {line.split()[0] for line in doc.splitlines() if line.startswith("  ") and line.split()}
    missing = {m for m in modules() if "." not in m} - listed  # a subpackage's docstring lists its own
    assert not missing, f"osvtrace/gdb/__init__.py does not list {sorted(missing)}"


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")
def test_gdb_loads_every_module():
    script = ("import sys\n"
              f"mods = {modules()!r}\n"
              f"missing = [m for m in mods if '{NAME}.' + m not in sys.modules]\n"
              "print('MISSING', missing)\n")
    out = subprocess.run(["gdb", "-batch", "-nx", "-x", str(ROOT / "gdb" / "osv.py"), "-ex", f"python\n{script}\nend",
                          "-ex", "help osv"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "MISSING []" in out.stdout, out.stdout + out.stderr
    assert "osv info threads" in out.stdout, out.stdout + out.stderr
