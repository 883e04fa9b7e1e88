"""The repository stays small enough to clone quickly: no tracked file over 2 MB (fixtures that
need to be bigger are generated at test time or compressed)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 2 * 1024 * 1024


def test_no_tracked_file_is_larger_than_2_mb():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    paths = [p for p in out.decode().split("\0") if p]
    assert paths, "git ls-files listed nothing: not run from the repository?"
    big = sorted((f"{p} ({(ROOT / p).stat().st_size:,} bytes)" for p in paths
                  if (ROOT / p).is_file() and (ROOT / p).stat().st_size > LIMIT))
    assert not big, "tracked files over 2 MB: " + ", ".join(big)


def test_core_dumps_are_ignored():
    for dump in ("core", "kernel/core.1234", "build/qemu.core"):
        assert subprocess.run(["git", "check-ignore", "-q", dump], cwd=ROOT).returncode == 0, dump


def test_directories_named_core_are_not_ignored():
    # kernel/core/ holds the kernel's core; only core *files* (dumps) are ignored
    out = subprocess.run(["git", "check-ignore", "-q", "kernel/core/new_mechanism.cc"], cwd=ROOT)
    assert out.returncode == 1
