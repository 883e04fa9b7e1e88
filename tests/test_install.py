"""The package works when installed, not only in a checkout (issue 19).

The sdist is built from this checkout, the wheel from the sdist (what pip does), and each is
installed into its own fresh venv under a temporary directory outside the repository. Every
subcommand then runs from there (cwd outside the repository, no PYTHONPATH): the catalog, reports,
SQL, every export, the viewer served over HTTP and written as a page, the shell, the gdb script,
and `build`, `run` and `record`, which build the kernel from the installed sources into a fresh
per-user cache ($XDG_CACHE_HOME) once; the second install reuses that build (same sources, same
compiler: same key).

Slow by nature (two Cython builds, two dependency installs, one kernel build): independent steps
run in parallel (the dependencies go into both venvs while the wheels build), pip's own cache is
used, and the kernel build starts as soon as one install is ready.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.traces import small_trace_file
from tests.support.vm import require_tools

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
KINDS = ("sdist", "wheel")
DEPENDENCIES = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
PIP = ["-m", "pip", "--disable-pip-version-check", "-q"]
INSTALL = ["install", "--no-compile"]  # no .pyc files for pyarrow and friends: seconds saved, nothing tested lost

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(1800)]


def _run(argv: list[str], *, cwd: Path, env: dict | None = None, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "OSVTRACE_VENV")}
    env.update(extra)
    return env


class Install:
    """One fresh venv holding osvtrace installed from the sdist or the wheel."""

    def __init__(self, kind: str, venv: Path, work: Path, cache: Path):
        self.kind, self.venv, self.work, self.cache = kind, venv, work, cache
        self.bin = venv / "bin"
        self.env = _clean_env(XDG_CACHE_HOME=str(cache), PATH=f"{self.bin}{os.pathsep}{os.environ['PATH']}")

    def osvtrace(self, *args: str, check: bool = True, env: dict | None = None, timeout: float = 300,
                 **kw) -> subprocess.CompletedProcess:
        argv = [str(self.bin / "osvtrace"), *args]
        if check:
            return _run(argv, cwd=self.work, env=env or self.env, timeout=timeout, **kw)
        return subprocess.run(argv, cwd=self.work, env=env or self.env, capture_output=True, text=True,
                              timeout=timeout, **kw)


class Setup:
    def __init__(self, base: Path):
        self.base = base
        self.cache = base / "cache"
        self.installs: dict[str, Install] = {}
        self.kernel: Future | None = None
        self.times: dict[str, float] = {}


def _fixture_trace(path: Path) -> Path:
    """Two CPUs: threads, a switch, a mutex hand-off and a packet (the small_trace fixture's)."""
    return small_trace_file(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    require_tools("make", "g++", "qemu-system-x86_64", "gdb")
    base = tmp_path_factory.mktemp("install")
    assert ROOT not in base.parents, f"{base} is inside the repository"
    s = Setup(base)
    dist, work = base / "dist", base / "work"
    work.mkdir()
    _fixture_trace(work / "t.osvt")
    py = sys.executable
    pip_env = _clean_env()  # pip keeps its own cache (~/.cache/pip): wheels of the dependencies are reused
    t0 = time.monotonic()
    _run([py, "-m", "build", "--sdist", "-o", str(dist), str(ROOT)], cwd=base, env=pip_env)
    sdist = next(dist.glob("osvtrace-*.tar.gz"))
    s.times["sdist"] = time.monotonic() - t0

    def install(kind: str) -> Install:
        t = time.monotonic()
        venv = base / f"venv-{kind}"
        _run([py, "-m", "venv", str(venv)], cwd=base, env=pip_env)
        vpy = str(venv / "bin" / "python")
        # The declared dependencies go in while the other thread builds the wheel (both install
        # commands below still resolve osvtrace's requirements themselves).
        _run([vpy, *PIP, *INSTALL, *DEPENDENCIES], cwd=base, env=pip_env)
        if kind == "sdist":
            _run([vpy, *PIP, *INSTALL, str(sdist)], cwd=base, env=pip_env)  # pip builds the wheel itself
        else:
            _run([vpy, *PIP, *INSTALL, str(wheel.result())], cwd=base, env=pip_env)
        s.times[f"install {kind}"] = time.monotonic() - t
        return Install(kind, venv, work, s.cache)

    def build_wheel() -> Path:
        t = time.monotonic()
        wheels = base / "wheels"
        _run([py, *PIP, "wheel", "--no-deps", "-w", str(wheels), str(sdist)], cwd=base, env=pip_env)
        s.times["wheel from the sdist"] = time.monotonic() - t
        return next(wheels.glob("osvtrace-*.whl"))

    pool = ThreadPoolExecutor(max_workers=4)
    wheel = pool.submit(build_wheel)
    futures = {kind: pool.submit(install, kind) for kind in KINDS}
    first = None
    while first is None:  # the kernel build starts with whichever install is ready first
        for kind, f in futures.items():
            if f.done():
                first = f.result()
                break
        else:
            time.sleep(0.2)

    def build_kernel() -> subprocess.CompletedProcess:
        t = time.monotonic()
        r = first.osvtrace("build", "-q", timeout=900)
        s.times["kernel build"] = time.monotonic() - t
        return r

    s.kernel = pool.submit(build_kernel)
    s.installs = {kind: f.result() for kind, f in futures.items()}
    s.times["setup (without the kernel)"] = time.monotonic() - t0
    yield s
    pool.shutdown(wait=True)
    print("\ntest_install times: " + ", ".join(f"{k} {v:.0f} s" for k, v in s.times.items()), file=sys.stderr)


@pytest.fixture(scope="module")
def kernel_elf(setup) -> Path:
    r = setup.kernel.result()
    path = Path(r.stdout.strip())
    assert r.stdout.count("\n") == 1 and path.is_file(), r.stdout
    assert path.parent.parent == setup.cache / "osvtrace" / "kernel"
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_installed_outside_the_checkout(setup, kind):
    inst = setup.installs[kind]
    code = "import osvtrace, osvtrace.resources as r; print(osvtrace.__file__); print(r.checkout())"
    out = _run([str(inst.bin / "python"), "-c", code], cwd=inst.work, env=inst.env).stdout.split()
    assert Path(out[0]).is_relative_to(inst.venv) and out[1] == "None"
    site = Path(out[0]).parent
    for name in ("kernel/Makefile", "tracepoints/sched.toml", "viewer/index.html", "gdb/osv.py"):
        assert (site / "_data" / name).is_file(), name
    assert (site / "format" / "proto" / "osvt.proto").is_file()
    assert list((site / "format").glob("_decode_loops*.so"))
    assert list((site / "model").glob("_stack_loops*.so"))


@pytest.mark.parametrize("kind", KINDS)
def test_trace_commands(setup, kind, tmp_path):
    """The commands that read a trace, run side by side."""
    inst = setup.installs[kind]
    out = tmp_path
    t = str(inst.work / "t.osvt")
    checks = {
        "version": (["--version"], lambda r: r.stdout.strip() == f"osvtrace, version {VERSION}"),
        "tracepoints": (["tracepoints"], lambda r: "mutex_handoff" in r.stdout),
        "summary": (["report", "summary", t], lambda r: "worker-a" in r.stdout or "events" in r.stdout),
        "sched json": (["report", "sched", t, "--json"], lambda r: isinstance(json.loads(r.stdout), (dict, list))),
        "mutex json": (["report", "mutex", t, "--json"], lambda r: isinstance(json.loads(r.stdout), (dict, list))),
        "net": (["report", "net", t], lambda r: True),
        "list": (["report", "list", t, "--tp", "mutex_*"], lambda r: "mutex_handoff" in r.stdout),
        "query": (["query", t, "select count(*) as n from events"], lambda r: re.search(r"\b9\b", r.stdout)),
        "perfetto": (["export", t, "--format", "perfetto", "-o", str(out / "t.pftrace")],
                     lambda r: (out / "t.pftrace").stat().st_size > 0),
        "chrome": (["export", t, "--format", "chrome", "-o", str(out / "t.json")],
                   lambda r: json.loads((out / "t.json").read_text()) is not None),
        "pcap": (["export", t, "--format", "pcap", "-o", str(out / "t.pcap")],
                 lambda r: (out / "t.pcap").read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")),
        "parquet": (["export", t, "--format", "parquet", "-o", str(out / "pq")],
                    lambda r: any((out / "pq").rglob("*.parquet"))),
        "ctf": (["export", t, "--format", "ctf", "-o", str(out / "ctf")], lambda r: (out / "ctf" / "metadata").is_file()),
        "static page": (["view", t, "--static", "-o", str(out / "t.html")],
                        lambda r: 'id="osv-data"' in (out / "t.html").read_text()),
        "shell": (["shell", t], lambda r: "worker-a" in r.stdout),
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(inst.osvtrace, *argv, check=False,
                                     input="summary\nsql select name from threads\n" if name == "shell" else None)
                   for name, (argv, _ok) in checks.items()}
    failed = []
    for name, (argv, ok) in checks.items():
        r = futures[name].result()
        try:
            good = r.returncode == 0 and ok(r)
        except Exception as e:  # the output was not what it should be
            good = False
            r.stderr += f"\n(check raised {e!r})"
        if not good:
            failed.append(f"{name}: osvtrace {' '.join(argv)} exited {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    assert not failed, "\n\n".join(failed)


@pytest.mark.parametrize("kind", KINDS)
def test_view_serves_the_page_and_the_api(setup, kind):
    inst = setup.installs[kind]
    p = subprocess.Popen([str(inst.bin / "osvtrace"), "view", str(inst.work / "t.osvt"), "--port", "0", "--no-open"],
                         cwd=inst.work, env=inst.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        m = re.search(r"viewer at (http://\S+)", line)
        assert m, f"no URL: {line!r} {p.stderr.read() if p.poll() is not None else ''}"
        url = m.group(1).rstrip("/")
        with urllib.request.urlopen(url + "/index.html", timeout=30) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()
        with urllib.request.urlopen(url + "/api/meta", timeout=30) as resp:
            assert resp.status == 200 and isinstance(json.loads(resp.read()), dict)
    finally:
        p.terminate()
        p.wait(timeout=30)


@pytest.mark.parametrize("kind", KINDS)
def test_gdb_script_loads_in_gdb(setup, kind):
    inst = setup.installs[kind]
    script = Path(inst.osvtrace("gdb-script").stdout.strip())
    assert script.is_file() and script.is_relative_to(inst.venv)
    # plain gdb, started anywhere: the script finds the installed package by itself
    r = _run(["gdb", "-nx", "-batch", "-x", str(script), "-ex", "help osv"], cwd=inst.work,
             env=_clean_env(), timeout=120)
    assert "cannot load" not in r.stdout + r.stderr
    assert "osv info" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_run_and_record_boot_the_cached_kernel(setup, kind, kernel_elf, no_orphans):
    inst = setup.installs[kind]
    stamp = kernel_elf.stat().st_mtime_ns
    r = inst.osvtrace("run", "--timeout", "120", "hello")
    assert "Hello from osvtrace!" in r.stdout
    assert "building the kernel" not in r.stderr  # built once (by the other install or `build`), reused
    rec = inst.work / f"rec-{kind}.osvt"
    inst.osvtrace("record", "-o", str(rec), "--trace", "sched_*,thread_*", "--timeout", "120", "threads")
    assert "events" in inst.osvtrace("report", "summary", str(rec)).stdout
    assert kernel_elf.stat().st_mtime_ns == stamp
    assert Path(inst.osvtrace("build", "-q").stdout.strip()) == kernel_elf
    # the installed gdb script with the cached kernel: the gdb line the README gives
    script = inst.osvtrace("gdb-script").stdout.strip()
    g = _run(["gdb", "-nx", "-batch", "-x", script, "-ex", "list kernel_entry", str(kernel_elf)],
             cwd=inst.work, env=_clean_env(), timeout=120)
    assert "cannot load" not in g.stdout + g.stderr
    assert "kernel_entry" in g.stdout, g.stdout + g.stderr  # the cached sources, found through the debug info
    # osvtrace gdb: the VM halted, gdb attached with the installed script, the osv commands working
    g = inst.osvtrace("gdb", "--batch", "--ex", "break gdbcheck_stop", "--ex", "continue", "--ex", "osv info threads",
                      "gdbcheck", timeout=180)
    out = g.stdout + g.stderr
    # gdb's and the guest console's lines share the terminal and may interleave mid-line
    assert "Breakpoint 1, " in out and re.search(r"gdbcheck_stop \(\) at apps/gdbcheck\.cc:\d+", out), out
    assert "holder" in out and "cannot load" not in out, out


def test_no_compiler_says_what_to_install(setup):
    inst = setup.installs["wheel"]
    bare = setup.base / "bare-path"
    bare.mkdir(exist_ok=True)
    # gdb, QEMU and friends are elsewhere on PATH: only osvtrace's venv and an empty directory here
    env = dict(inst.env, PATH=f"{inst.bin}{os.pathsep}{bare}")
    r = inst.osvtrace("run", "hello", check=False, env=env)
    assert r.returncode == 2
    assert r.stderr == ("osvtrace: cannot build the kernel: g++, make, nm not found: install with "
                        "apt-get install -y binutils g++ make\n")


def test_unwritable_cache_says_which_directory(setup, tmp_path):
    inst = setup.installs["wheel"]
    (tmp_path / "file").write_text("")
    for cache, blamed in ((tmp_path / "file", tmp_path / "file"), (Path("/sys/osvtrace-test-cache"), Path("/sys"))):
        r = inst.osvtrace("record", "-o", str(tmp_path / "x.osvt"), "hello", check=False,
                          env=dict(inst.env, XDG_CACHE_HOME=str(cache)))
        assert r.returncode == 2, r.stdout + r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
        assert r.stderr.startswith(f"osvtrace: cannot build the kernel into the cache: {blamed} is not writable (")
        assert r.stderr.endswith("set XDG_CACHE_HOME to a writable directory\n")
