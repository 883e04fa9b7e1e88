"""`make fuzz`: every harness under atheris for its share of the inputs, from seeds made now.

    python -m tests.fuzz.run [--runs N] [--only osvt,stream,viewer] [--out build/fuzz]

Each harness runs in its own process (libFuzzer owns it) with a per-input time limit (a hang
is an input slower than that) and a memory limit; crashes, hangs and out-of-memory inputs
are saved under OUT/NAME/ as libFuzzer names them. One line per harness and a total, and
exit status 1 when anything was found.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz import seeds
from tests.fuzz.harness import HARNESSES

# Share of the inputs per harness: the reader does the most per input, so it gets the most time.
SHARES = {"osvt": 0.4, "stream": 0.3, "viewer": 0.3}
MAX_LEN = {"osvt": 1 << 16, "stream": 1 << 16, "viewer": 4096}
HANG_SECONDS = 10
RSS_LIMIT_MB = 3072
# NOTE: under atheris a harness process grows by a few KB per input outside Python's heap
# (the Python objects stay constant; uninstrumented, RSS stays flat), so long runs are cut
# into rounds.
ROUND = 50_000
TMP_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else None  # the harnesses' scratch files, removed per round


def run_one(name: str, runs: int, out: Path) -> dict[str, object]:
    """`runs` inputs of one harness, in rounds of at most ROUND (a process each, the corpus
    carried over), so the run's memory is a round's."""
    work = out / name
    shutil.rmtree(work, ignore_errors=True)
    corpus = work / "corpus"
    n_seeds = seeds.write_corpus(name, corpus)
    clock = time.monotonic()
    execs = cov = 0
    rc = 0
    peak_rss = 0
    log_path = work / "log.txt"
    for k in range(0, runs, ROUND):
        n = min(ROUND, runs - k)
        cmd = [sys.executable, "-m", "tests.fuzz.harness", name, str(corpus), f"-atheris_runs={n}",
               f"-max_len={MAX_LEN[name]}", f"-timeout={HANG_SECONDS}", f"-rss_limit_mb={RSS_LIMIT_MB}",
               f"-artifact_prefix={work}/", "-print_final_stats=1"]
        env = dict(os.environ)
        with open(log_path, "ab") as log, tempfile.TemporaryDirectory(prefix="osvtrace-fuzz-", dir=TMP_ROOT) as tmp:
            env["OSVTRACE_FUZZ_TMP"] = tmp
            log.write(f"== round {k // ROUND + 1}: {' '.join(cmd)}\n".encode())
            log.flush()
            start = log.tell()
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        with open(log_path, "rb") as log:
            log.seek(start)
            text = log.read().decode(errors="replace")
        done = re.findall(r"Done (\d+) (?:runs )?in (\d+) second", text)
        execs += int(done[-1][0]) if done else max((int(x) for x in re.findall(r"#(\d+)\s", text)), default=0)
        cov = max([cov] + [int(x) for x in re.findall(r"cov: (\d+)", text)])
        peak_rss = max([peak_rss] + [int(x) for x in re.findall(r"rss: (\d+)Mb", text)])
        if rc:
            break
    seconds = time.monotonic() - clock
    found = sorted(p.name for p in work.iterdir() if re.match(r"(crash|timeout|oom|leak|slow-unit)-", p.name))
    return {"name": name, "runs": execs, "seconds": seconds, "found": found, "rc": rc, "seeds": n_seeds,
            "corpus": sum(1 for _ in corpus.iterdir()), "cov": cov, "rss": peak_rss, "log": log_path}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000_000, help="inputs in total, shared by the harnesses")
    ap.add_argument("--only", default=",".join(HARNESSES), help="comma-separated harness names")
    ap.add_argument("--out", type=Path, default=Path("build/fuzz"))
    a = ap.parse_args(argv)
    names = [n for n in a.only.split(",") if n]
    bad = [n for n in names if n not in HARNESSES]
    if bad:
        ap.error(f"no such harness: {', '.join(bad)} (harnesses: {', '.join(HARNESSES)})")
    share = sum(SHARES[n] for n in names)
    total_runs = total_s = 0.0
    failed = False
    for n in names:
        r = run_one(n, max(1, round(a.runs * SHARES[n] / share)), a.out)
        total_runs += r["runs"]  # type: ignore[operator]
        total_s += r["seconds"]  # type: ignore[operator]
        ok = not r["found"] and r["rc"] == 0
        failed |= not ok
        print(f"fuzz {n}: {r['runs']:,} inputs in {r['seconds']:.0f} s, coverage {r['cov']}, "
              f"peak RSS {r['rss']} MB, corpus "
              f"{r['seeds']} seeds -> {r['corpus']}, "
              + ("0 crashes or hangs" if ok else f"FOUND {', '.join(r['found']) or 'exit ' + str(r['rc'])} "
                 f"(log: {r['log']})"), flush=True)
    print(f"fuzz total: {int(total_runs):,} inputs in {total_s:.0f} s, "
          + ("0 crashes or hangs" if not failed else "failures above"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
