"""Real OSv: the committed trace files (tests/fixtures/osv/) and OSv's own scripts/trace.py."""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.support.traces import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "osv"
SHARED = ROOT.parent / "shared" / "osv"
SYSTEM_PYTHON = "/usr/bin/python3"


def fixture(name: str, dest: Path) -> Path:
    """A committed fixture in `dest` (unpacked when it is kept xz-compressed), with its
    .symbols side file when there is one. Returns the trace file's path."""
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted(FIXTURES.glob(name + "*")):
        if src.suffix in (".txt", ".md"):
            continue
        out = dest / (src.name[:-3] if src.suffix == ".xz" else src.name)
        if not out.exists():
            if src.suffix == ".xz":
                out.write_bytes(lzma.decompress(src.read_bytes()))
            else:
                shutil.copyfile(src, out)
    return dest / name


def expected_summary(name: str) -> list[tuple[str, int]]:
    """What OSv's `scripts/trace.py summary` printed for a fixture, recorded beside it."""
    return parse_summary((FIXTURES / f"{name}.tracepy-summary.txt").read_text())


def parse_summary(text: str) -> list[tuple[str, int]]:
    """trace.py summary's "Tracepoint statistics" as sorted (name, count) pairs (one per
    tracepoint key: a name with several keys appears several times, as trace.py prints it)."""
    out = []
    if "Tracepoint statistics:" not in text:
        raise ValueError(f"no 'Tracepoint statistics' in trace.py's output: {text[-300:]!r}")
    body = text.split("Tracepoint statistics:", 1)[1]
    for line in body.splitlines():
        m = re.match(r"^\s+(\S+)\s+(\d+)\s*$", line)
        if m:
            out.append((m[1], int(m[2])))
        elif line.strip() == "" and out:
            break
    return sorted(out)


def osv_dir() -> Path | None:
    """OSv's source tree (built or not) whose scripts/trace.py reads traces, when there is one:
    OSV_DIR, OSV_SRC, build.sh's tree, else scripts/ unpacked from ../shared/osv's tarball
    (into build/osv-scripts, once)."""
    for d in (os.environ.get("OSV_DIR"), os.environ.get("OSV_SRC"),
              os.path.join(os.environ.get("OSV_BUILD_DIR") or os.path.join(
                  os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "osv-build"), "osv")):
        if d and (Path(d) / "scripts" / "trace.py").exists():
            return Path(d)
    tarballs = sorted(SHARED.glob("osv-src-*.tar.xz"))
    if not tarballs:
        return None
    out = ROOT / "build" / "osv-scripts" / tarballs[-1].name.split(".")[0]
    if not (out / "scripts" / "trace.py").exists():
        out.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["tar", "xJf", str(tarballs[-1]), "-C", str(out), "--strip-components=1",
                            "--wildcards", "*/scripts/*"], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"unpacking scripts/ from {tarballs[-1]}: {r.stderr.strip()[-300:]}")
    return out


def tracepy_summary(osv: Path, path: Path, timeout: float = 600) -> str:
    """Run OSv's `scripts/trace.py summary FILE` (Debian's python3: it needs requests)."""
    r = subprocess.run([SYSTEM_PYTHON, "scripts/trace.py", "summary", str(path)], cwd=osv, capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"trace.py summary {path} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    return r.stdout


def tracepy(osv: Path, command: str, path: Path, *args: str, timeout: float = 600) -> str:
    """Run OSv's `scripts/trace.py COMMAND [ARGS] FILE` (Debian's python3: it needs requests)."""
    r = subprocess.run([SYSTEM_PYTHON, "scripts/trace.py", command, *args, str(path)], cwd=osv, capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"trace.py {command} {path} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    return r.stdout


_UNITS = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}
_NODE = re.compile(r"^(?:(?P<t>[\d.]+) (?P<u>h|m|s|ms|us|ns) )?\((?:[\d.]+%, )?#(?P<n>\d+)\) (?P<name>.*)$")
_PREFIX = re.compile(r"^((?: \|   |     | \|-- | \\-- )*)(.*)$")


_NO_SYMBOL = re.compile(r"^No symbol matches (0x[0-9a-f]+)\.$")


def _frame(name: str) -> str:
    """A frame as ours shows it: trace.py prints gdb's 'No symbol matches 0xA.' (A: the return
    address - 1) where ours shows the return address (docs/osv.md, intended differences)."""
    m = _NO_SYMBOL.match(name)
    return f"{int(m[1], 16) + 1:#x}" if m else name


def parse_tree(text: str) -> dict[tuple[str, ...], tuple[int, float]]:
    """A profile tree as trace.py prints it (scripts/osv/tree.py), as {path of frame names below
    the root: (count, ns)}; the lines of a collapsed chain (same count and time) become the
    nodes they stand for. Times are as printed (3 significant digits); unnamed frames as ours."""
    out: dict[tuple[str, ...], tuple[int, float]] = {}
    path: list[str] = []
    ends: list[int] = []  # per depth as drawn, the length of the path its node (and chain) ends at
    last = (0, 0.0)
    for line in text.splitlines():
        m = _PREFIX.match(line)
        prefix, rest = m[1], m[2]
        if not rest.strip() or rest.startswith("==="):
            continue
        node = _NODE.match(rest)
        if node:
            drawn = len(prefix) // 5  # 0: the root
            del ends[drawn:]
            del path[ends[-1] if ends else 0:]
            last = (int(node["n"]), float(node["t"]) * _UNITS[node["u"]] if node["t"] else 0.0)
            if drawn:
                path.append(_frame(node["name"]))
                out[tuple(path)] = last
            ends.append(len(path))
        else:  # the next frame of a collapsed chain (its label's lines are joined with "\n ")
            path.append(_frame(rest[1:] if rest.startswith(" ") else rest))
            out[tuple(path)] = last
            ends[-1] = len(path)
    return out
