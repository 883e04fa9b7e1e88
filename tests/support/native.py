"""Build host programs against the kernel's trace headers (for tests and benchmarks)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "tests" / "native"
INCLUDES = [f"-I{ROOT / 'kernel' / 'include'}", f"-I{NATIVE}"]


def build(source: Path, out: Path, *extra: str, sanitize: bool = False) -> Path:
    """Compile one C++ file with g++ (C++17); raises with the compiler's message on failure."""
    cmd = ["g++", "-std=c++17", "-O2", "-g", "-Wall", "-Wextra", "-Werror", *INCLUDES, str(source), "-o", str(out),
           "-pthread", *extra]
    if sanitize:
        cmd[3:3] = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"g++ failed for {source.name}:\n{r.stderr}")
    return out
