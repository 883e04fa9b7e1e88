"""Real OSv for the tests: built once per machine from ../shared/osv (or $OSV_SRC) with its
build.sh into a cache, booted under QEMU TCG with run.sh's command line and a gdb stub, and
gdb attached (MI) with OSv's own scripts/loader.py auto-loaded and osvtrace's commands on top.

The OSv tests run whenever the OSv source is there. Without it they skip, except under
CI=true, where they fail: CI must build and test real OSv.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from osvtrace import resources
from osvtrace.capture.gdb_snapshot import _connect
from osvtrace.vm import osv_image
from osvtrace.vm.gdbmi import Gdb
from osvtrace.vm.proc import end_process, spawn
from osvtrace.vm.qemu import free_port
from tests.support.gdb import osv_command
from tests.support.vm import ROOT, require_tools

BUILD_TIMEOUT = 1800  # seconds: a clean build is ~200 s on 2 idle cores
DEFAULT_TRACE = ("sched*", "mutex*", "condvar*")


def osv_src() -> Path | None:
    """The directory holding OSv's build.sh (the pinned source tarball beside it)."""
    for cand in (os.environ.get("OSV_SRC"), ROOT.parent / "shared" / "osv"):
        if cand and (Path(cand) / "build.sh").is_file():
            return Path(cand)
    return None


def require_osv() -> Path:
    src = osv_src()
    if src is None:
        msg = "no OSv source: neither ../shared/osv (beside the repository) nor $OSV_SRC has build.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI must test real OSv)", pytrace=False)
        pytest.skip(msg)
    require_tools("qemu-system-x86_64", "gdb", "qemu-nbd")
    return src


def build_dir() -> Path:
    return osv_image.default_tree().parent


def built(tree: Path) -> bool:
    rel = tree / "build" / "release"
    return (rel / "loader.elf").is_file() and (rel / "usr.img").is_file()


def build(nice: int = 0) -> Path:
    """The OSv tree with loader.elf and usr.img: reused when there, else built with build.sh
    (under a lock: one build per cache directory, also across test sessions; `nice` lowers
    the build's priority, for the build started in the background at the session's start)."""
    return _locked_build(build_dir(), nice)


def rest_build_dir() -> Path:
    """Where the REST image is built: beside the plain build, in a tree of its own (build.sh
    REST=1 puts OSv's httpserver-api into usr.img, and the plain image must stay without it)."""
    plain = build_dir()
    return plain.with_name(plain.name + "-rest")


def build_rest(nice: int = 0) -> Path:
    """The OSv tree whose usr.img has OSv's REST server (httpserver-api, `GET /trace/buffers`).
    Seeded from a copy of the plain build when there is one (timestamps kept, so make builds
    only the module and the image: ~60 s instead of a whole kernel)."""
    plain = build()
    return _locked_build(rest_build_dir(), nice, env={"REST": "1"}, seed=plain)


def _locked_build(dest: Path, nice: int, env: dict[str, str] | None = None, seed: Path | None = None) -> Path:
    """build.sh into `dest` under `dest`'s lock, unless already built there; `seed`: an OSv tree
    copied in first (with build.sh's unpack marker) when `dest` has none."""
    src = require_osv()
    tree = dest / "osv"
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / ".osvtrace-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if built(tree) and not _building(tree):
            return tree
        _wait_for_other_build(tree)
        if built(tree):
            return tree
        if seed is not None and not tree.exists():
            subprocess.run(["cp", "-a", str(seed), str(tree)], check=True, timeout=600)
            for marker in seed.parent.glob(".unpacked-*"):
                shutil.copy2(marker, dest / marker.name)
        t0 = time.monotonic()
        # build.sh apt-installs what is missing when run as root (a fresh CI machine); SKIP_APT=1 skips that.
        out = subprocess.run([*(["nice", "-n", str(nice)] if nice else []), "bash", str(src / "build.sh"), str(dest)],
                             capture_output=True, text=True, env={**os.environ, **(env or {})},
                             timeout=BUILD_TIMEOUT)
        if out.returncode or not built(tree):
            pytest.fail(f"OSv build failed ({time.monotonic() - t0:.0f} s): {out.stdout[-3000:]}{out.stderr[-3000:]}",
                        pytrace=False)
    return tree


def _building(tree: Path) -> bool:
    """Someone (not this lock's holders: build.sh run by hand) is building in this tree."""
    out = subprocess.run(["pgrep", "-f", "scripts/build"], capture_output=True, text=True).stdout.split()
    for pid in out:
        try:
            if Path(f"/proc/{pid}/cwd").resolve() == tree.resolve():
                return True
        except OSError:
            continue
    return False


def _wait_for_other_build(tree: Path, limit: float = BUILD_TIMEOUT) -> None:
    deadline = time.monotonic() + limit
    while _building(tree) and time.monotonic() < deadline:
        time.sleep(5)


def parse_table(out: str) -> dict[int, dict[str, str]]:
    """The rows of an osv table (fmt.table: columns padded, left-aligned but the first) by
    their first cell, cut at the header's column starts (cells may hold spaces)."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    header = lines[0]
    names = header.split()
    starts = [0] + [header.index(" " + n, 1) + 1 for n in names[1:]]
    rows = {}
    for ln in lines[1:]:
        cells = [ln[a:b].strip() for a, b in zip(starts, starts[1:] + [len(ln) + 1])]
        if cells[0].isdigit():
            rows[int(cells[0])] = dict(zip(names, cells))
    return rows


def tracepoint_counts(t) -> list[tuple[str, int]]:
    """(name, records) per tracepoint key of an opened OSv trace, sorted: as trace.py's
    summary lists them (tests/support/osv_traces.py parse_summary)."""
    import numpy as np

    c = np.bincount(t.events.tp, minlength=t.catalog.max_id + 1)
    return sorted((tp.name, int(c[tp.id])) for tp in t.catalog.tracepoints if c[tp.id])


def image_with_args(tree: Path, args: str, into: Path) -> Path:
    """usr.img with OSv's command line set: a qcow2 overlay (osvtrace.vm.osv_image, what
    `record --kernel osv` boots; the build's image is not touched)."""
    return osv_image.image_with_cmdline(tree / "build" / "release" / "usr.img", args, into)


class OsvVm:
    """OSv under QEMU TCG (run.sh's command line) with a gdb stub, halted at reset, and gdb
    (MI) attached from the OSv tree: loader.py auto-loaded, osvtrace's osv commands on top.
    loader.py's own commands stay callable as loader_py("osv_info_threads")."""

    def __init__(self, tree: Path, app: str, *, trace: tuple[str, ...] = DEFAULT_TRACE, smp: int = 2,
                 mem: str = "1G", gdb_timeout: float = 180.0, options: tuple[str, ...] = ()):
        """`options`: more of OSv's own options (`--trace-backtrace`) before the app."""
        self.tree = tree
        self.tmp = Path(tempfile.mkdtemp(prefix="osv-gdb-"))
        args = " ".join([f"--trace={t}" for t in trace] + list(options)) + f" --rootfs=rofs {app}"
        img = image_with_args(tree, args.strip(), self.tmp)
        self.port = free_port()
        self.console_path = self.tmp / "console.txt"
        self._console = open(self.console_path, "wb")
        mem_mb = int(mem[:-1]) * 1024 if mem.endswith("G") else int(mem.rstrip("M"))
        cmd = osv_image.qemu_args(img, smp=smp, mem_mb=mem_mb, accel="tcg") + [
            "-S", "-gdb", f"tcp:127.0.0.1:{self.port}"]
        self.qemu = spawn(cmd, stdin=subprocess.DEVNULL, stdout=self._console, stderr=subprocess.STDOUT)
        try:
            self.gdb = Gdb(None, load_osv=False, timeout=gdb_timeout)
            self.gdb.mi("-gdb-set auto-load safe-path /")
            self.gdb.mi(f"-environment-cd {tree}")
            t0 = time.monotonic()
            self.gdb.mi("-file-exec-and-symbols build/release/loader.elf", gdb_timeout)
            self.symbols_seconds = time.monotonic() - t0
            self.gdb.cli(f"source {resources.gdb_script()}")
            _connect(self.gdb, self, self.port, limit=20)
        except BaseException:
            self.close()
            raise

    @property
    def running(self) -> bool:  # for _connect
        return self.qemu.poll() is None

    @property
    def errors(self) -> bytes:  # for _connect
        return self.console().encode()

    def console(self) -> str:
        try:
            return self.console_path.read_text(errors="replace")
        except OSError:
            return ""

    def console_until(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.console():
            assert self.running, f"QEMU ended before {text!r}:\n{self.console()[-3000:]}"
            assert time.monotonic() < deadline, f"{text!r} never appeared:\n{self.console()[-3000:]}"
            time.sleep(0.1)
        return self.console()

    def osv(self, command: str, timeout: float = 120) -> str:
        return osv_command(self.gdb, command, timeout)

    def loader_py(self, command_class: str, arg: str = "", timeout: float = 300) -> str:
        """Run one of OSv's scripts/loader.py commands (its class, e.g. osv_info_threads) on the
        same stop: osvtrace's commands own the `osv ...` names, loader.py's classes are still
        in gdb's __main__, where gdb ran the auto-loaded script."""
        return self.gdb.cli(f"python import __main__; __main__.{command_class}.invoke(None, {arg!r}, False)", timeout)

    def close(self) -> None:
        g = getattr(self, "gdb", None)
        if g is not None:
            g.close()
        end_process(self.qemu)
        self._console.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "OsvVm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prebuild_in_background() -> threading.Thread | None:
    """Start building OSv on a daemon thread, when the source is there and it is not built yet
    (a fresh machine: ~200 s of build.sh), then its REST image. The tests that need it call build(), which waits on
    the same lock; the build then overlaps the session's other tests instead of following them.
    Whatever goes wrong here is reported by the build() of the first test that needs it."""
    if osv_src() is None or (built(build_dir() / "osv") and built(rest_build_dir() / "osv")):
        return None

    def run() -> None:
        try:
            build(nice=10)
            build_rest(nice=10)  # the REST image (~60 s more, seeded from the plain build) for --via rest's tests
        except BaseException:  # noqa: BLE001 - pytest.fail/skip outside a test: the tests' own build() reports it
            pass

    t = threading.Thread(target=run, name="osv-prebuild", daemon=True)
    t.start()
    return t
