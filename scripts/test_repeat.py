#!/usr/bin/env python3
"""Run the default test suite N times and count, per test, the runs it failed in.

    python scripts/test_repeat.py [-n N] [--out DIR] [-- PYTEST-ARGS...]

Each run is `python -m pytest -q --junitxml=DIR/run-K.xml` with the project's own selection
(pyproject's addopts: -m 'not slow'), its console saved as DIR/run-K.log. The counting reads
the JUnit XML of each run, never the terminal text. At the end: a table of every test that
failed (or errored) in any run with failures/N, the wall time of each run, and exit status 1
if any test failed in any run (or a run left no XML), else 0; Ctrl-C prints the table of
the runs that finished (status 130; SIGTERM too). `make test-repeat N=5` runs it.
"""

from __future__ import annotations

import argparse
import collections
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def node_id(classname: str, name: str) -> str:
    """pytest's node id from a JUnit testcase: the longest dotted prefix of classname that is a
    .py file under the root is the module, the rest are classes."""
    parts = classname.split(".") if classname else []
    for k in range(len(parts), 0, -1):
        path = Path(*parts[:k]).with_suffix(".py")
        if (ROOT / path).is_file():
            return "::".join([path.as_posix(), *parts[k:], name])
    return "::".join([*parts, name]) if parts else name


def read_run(xml: Path) -> tuple[list[str], list[str]]:
    """(every test id in the run, the ids that failed or errored), from one JUnit XML file."""
    tests: list[str] = []
    failed: list[str] = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        tid = node_id(case.get("classname", ""), case.get("name", ""))
        if tid not in tests:  # pytest writes a second testcase for an error in teardown
            tests.append(tid)
        if case.find("failure") is not None or case.find("error") is not None:
            if tid not in failed:  # a test failing in its call and its teardown is one failure
                failed.append(tid)
    return tests, failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=5, help="how many runs (default 5)")
    ap.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "repeat",
                    help="where each run's JUnit XML and console log go (default test-artifacts/repeat)")
    ap.add_argument("--jobs", type=int, default=0,
                    help="pytest-xdist workers per run, as make test uses (default 0: serial)")
    ap.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    a = ap.parse_args(argv)
    if a.n < 1:
        ap.error("-n must be at least 1")
    a.out.mkdir(parents=True, exist_ok=True)
    jobs = ["-n", str(a.jobs), "--dist", "loadscope"] if a.jobs > 0 else []
    # Ctrl-C, and SIGINT or SIGTERM when started in the background (where SIGINT comes ignored):
    # end the current run and print the table of the finished ones.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    failures: collections.Counter[str] = collections.Counter()
    seen: set[str] = set()
    walls: list[float] = []
    broken: list[int] = []  # runs that left no readable XML
    interrupted = False
    for k in range(1, a.n + 1):
        xml, log = a.out / f"run-{k}.xml", a.out / f"run-{k}.log"
        xml.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *jobs, *a.pytest_args]
        print(f"test-repeat: run {k}/{a.n}: {' '.join(cmd[1:])} (console in {log})", flush=True)
        t0 = time.monotonic()
        try:
            with open(log, "w") as f:
                p = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
                try:
                    rc = p.wait()
                except KeyboardInterrupt:
                    # pytest ends its tests' fixtures (QEMUs, recorders) on SIGINT; killed only if it hangs
                    p.send_signal(signal.SIGINT)
                    try:
                        p.wait(60)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
                    raise
        except KeyboardInterrupt:  # Ctrl-C: the table of the runs that finished
            print(f"\ntest-repeat: interrupted during run {k}: the table below counts runs 1-{k - 1}", flush=True)
            interrupted = True
            break
        walls.append(time.monotonic() - t0)
        try:
            tests, failed = read_run(xml)
        except (OSError, ET.ParseError) as e:
            print(f"test-repeat: run {k}: pytest exited {rc} and left no readable JUnit XML ({e})", flush=True)
            broken.append(k)
            continue
        seen.update(tests)
        failures.update(failed)
        print(f"test-repeat: run {k}/{a.n}: {len(tests)} tests, {len(failed)} failed, pytest exit {rc}, "
              f"{walls[-1]:.0f} s" + (": " + ", ".join(failed) if failed else ""), flush=True)
        if rc not in (0, 1):  # 1 is "some tests failed"; anything else (2 interrupted, 3 internal, 4 usage) is a broken run
            print(f"test-repeat: run {k}: pytest exit status {rc} (not a test failure: see {log})", flush=True)
            broken.append(k)

    print()
    runs = len(walls)
    what = "the default suite" if not a.pytest_args else "pytest " + " ".join(a.pytest_args)
    print(f"test-repeat: {runs} runs of {what} ({len(seen)} tests)" + (f" (of {a.n} asked)" if runs < a.n else ""))
    if failures:
        width = max(len(t) for t in failures)
        print(f"{'test':<{width}}  failures/{runs}")
        for tid, n in sorted(failures.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"{tid:<{width}}  {n}/{runs}")
    else:
        print(f"no test failed in any of the {runs} runs")
    for k in broken:
        print(f"run {k}: broken (no JUnit XML or pytest exit status other than 0/1; see {a.out / f'run-{k}.log'})")
    if walls:
        print("wall time per run: " + ", ".join(f"run {k} {w:.0f} s" for k, w in enumerate(walls, 1))
              + f" (mean {sum(walls) / len(walls):.0f} s)")
    return 130 if interrupted else 1 if failures or broken else 0


if __name__ == "__main__":
    sys.exit(main())
