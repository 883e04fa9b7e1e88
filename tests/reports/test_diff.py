"""`osvtrace diff A B`: a run against itself shows no change; a lock whose holds doubled is
reported first; noise between two runs of the same program is not reported; keys are names,
so the same lock matches across runs; --json and --fail-if-grew serve CI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import osvtrace
from osvtrace.catalog.schema import default_catalog
from osvtrace.format.encode import CpuStreamBuilder
from osvtrace.model import Model
from osvtrace.reports.diff import UNNAMED, diff
from tests.support.traces import write_trace
from tests.support.vm import osvtrace as cli

LOCKS = [0x1000, 0x2000, 0x3000]


def lock_run(path: Path, seed: int, slow: int | None = None, n: int = 600) -> Path:
    """Two threads on two CPUs taking three mutexes in turn, holds ~lognormal around 2 us
    (lock `slow` held twice as long), never contended: holds and rates are all that differ."""
    rng = np.random.default_rng(seed)
    per = {}
    for cpu in (0, 1):
        b = CpuStreamBuilder(default_catalog())
        t, tid = 1000 + cpu * 7, 10 + cpu
        for i in range(n):
            m = LOCKS[(i + cpu) % 3]
            hold = int(rng.lognormal(np.log(2000), 0.3)) * (2 if m == slow else 1)
            b.add("mutex_lock", [t], tid, mutex=m + cpu * 0x100)  # each CPU its own three locks
            b.add("mutex_unlock", [t + hold], tid, mutex=m + cpu * 0x100)
            t += hold + int(rng.integers(500, 1500))
        per[cpu] = b.slots()
    return write_trace(path, per, threads={10: "worker-a", 11: "worker-b"})


def model(p: Path) -> Model:
    return Model(osvtrace.open(p))


def test_a_run_against_itself_shows_no_change(tmp_path):
    a = lock_run(tmp_path / "a.osvt", 1)
    d = diff(model(a), model(a))
    assert d.significant == [] and len(d.changes) > 0
    assert all(c.ratio_p50 == 1 and c.ratio_p99 == 1 for c in d.changes)


def test_a_lock_held_twice_as_long_is_reported_first(tmp_path):
    a, b = lock_run(tmp_path / "a.osvt", 1), lock_run(tmp_path / "b.osvt", 2, slow=0x2000)
    d = diff(model(a), model(b))
    top = d.significant[0]
    assert (top.kind, top.metric) == ("lock", "hold") and top.key in ("0x2000", "0x2100"), top
    assert 1.7 < top.ratio_p50 < 2.3
    # these locks have no names (addresses only): all of them pooled grew too
    slow_locks = {c.key for c in d.significant if c.kind == "lock"}
    assert slow_locks == {"0x2000", "0x2100", UNNAMED}, [c.as_dict() for c in d.significant]


def test_noise_between_two_runs_of_the_same_program_is_not_a_change(tmp_path):
    a, b = lock_run(tmp_path / "a.osvt", 1), lock_run(tmp_path / "b.osvt", 2)
    d = diff(model(a), model(b))
    assert [c for c in d.significant if c.kind == "lock"] == []
    # they are compared all the same, with their p-values
    holds = [c for c in d.changes if c.metric == "hold"]
    assert len(holds) == 6 + 1 and all(not math.isnan(c.p_value) for c in holds)  # and the pooled row


def test_a_lock_only_in_one_run_is_new_or_gone(tmp_path):
    a = lock_run(tmp_path / "a.osvt", 1)
    b = lock_run(tmp_path / "b.osvt", 1, n=900)
    d = diff(model(a), model(b), kinds=("lock",))
    assert d.significant == []  # the same locks, the same holds: more of them is no change here
    t = osvtrace.open(tmp_path / "a.osvt")
    assert len(t) > 0


def test_cli_json_and_fail_if_grew_for_ci(tmp_path):
    a, b = lock_run(tmp_path / "a.osvt", 1), lock_run(tmp_path / "b.osvt", 2, slow=0x2000)
    r = cli("diff", str(a), str(b), "--kind", "lock", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["significant"] == 3 and {c["key"] for c in doc["changes"]} == {"0x2000", "0x2100", UNNAMED}
    assert all(c["metric"] == "hold" and c["ratio_p99"] > 1.5 for c in doc["changes"])
    r = cli("diff", str(a), str(b), "--kind", "lock", "--fail-if-grew", "20")
    assert r.returncode == 1 and "p99 grew by more than 20%" in r.stderr and "0x2000" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("diff", str(a), str(b), "--kind", "lock", "--fail-if-grew", "500")
    assert r.returncode == 0, r.stderr
    r = cli("diff", str(a), str(a))
    assert r.returncode == 0 and "no change beyond noise" in r.stdout


def test_bad_input_is_one_clear_line(tmp_path):
    a = lock_run(tmp_path / "a.osvt", 1)
    (tmp_path / "junk.osvt").write_bytes(b"not a trace at all, really")
    r = cli("diff", str(a), str(tmp_path / "junk.osvt"))
    assert r.returncode == 2 and "junk.osvt" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("diff", str(a), str(tmp_path / "missing.osvt"))
    assert r.returncode == 2 and "missing.osvt" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.qemu
@pytest.mark.usefixtures("no_orphans")
def test_real_runs_name_the_slowed_mutex_and_a_run_against_itself_is_unchanged(kernel, tmp_path):
    """Our kernel's mutex app, one thread, three static mutexes; B holds mutex 2 twice as long.
    The hold loop is calibrated per boot, so all holds of B may scale alike (a loaded host):
    what must hold is mutex 2's hold against the others' by 2x, reported by its static name."""
    def record(out: Path, *extra: str) -> Path:
        r = cli("record", "-o", str(out), "--accel", "tcg", "--no-build", "--kernel", str(kernel), "--trace",
                "mutex_*", "mutex", "--threads", "1", "--mutexes", "3", "--iterations", "1500", "--hold-ns",
                "20000", *extra, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        return out

    a = record(tmp_path / "a.osvt")
    b = record(tmp_path / "b.osvt", "--slow-mutex", "2")
    r = cli("diff", str(a), str(a), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["significant"] == 0, r.stdout
    r = cli("diff", str(a), str(b), "--kind", "lock", "--all", "--json", "--elf", str(kernel))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    holds = {c["key"]: c for c in doc["changes"] if c["metric"] == "hold" and c["key"].startswith("mutex_main::slots[")}
    assert len(holds) == 3, [c["key"] for c in doc["changes"]]  # the kernel's own locks are there too, by name
    slow = next(k for k in holds if "slots[1]" in k)
    others = [holds[k]["ratio_p50"] for k in holds if k != slow]
    assert holds[slow]["significant"]
    assert 1.6 < holds[slow]["ratio_p50"] / np.mean(others) < 2.5, holds


def test_the_diff_page_lists_the_slowed_lock_first_and_draws_both_runs(tmp_path):
    """The page in Chromium: the first row is the slowed lock, its curves (A and B) are drawn,
    clicking another row draws that one; nothing is fetched and no script error happens."""
    from tests.support.browser import ARGS, CHROMIUM, SHOTS

    from playwright.sync_api import sync_playwright

    a, b = lock_run(tmp_path / "a.osvt", 1), lock_run(tmp_path / "b.osvt", 2, slow=0x2000)
    out = tmp_path / "diff.html"
    r = cli("diff", str(a), str(b), "--all", "--html", str(out))
    assert r.returncode == 0, r.stderr
    with sync_playwright() as p:
        br = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = br.new_page()
            errors, requests = [], []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda q: requests.append(q.url))
            page.goto(out.as_uri())
            page.wait_for_function("window.osvDiffShown === 0")
            first = page.locator("#changes tbody tr").first.locator("td").all_inner_texts()
            assert first[0] == "lock" and first[1] in ("0x2000", "0x2100") and first[2] == "hold", first
            names = page.evaluate("document.getElementById('plot').data.map(t => t.name)")
            assert names == ["A", "B"]
            # B's curve sits above A's across the middle: holds doubled
            qa, qb = page.evaluate("[document.getElementById('plot').data[0].y, document.getElementById('plot').data[1].y]")
            assert all(1.6 < qb[k] / qa[k] < 2.4 for k in (25, 50, 75))
            page.locator("#changes tbody tr").nth(3).click()
            page.wait_for_function("window.osvDiffShown === 3")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "diff-page.png"))
            assert errors == [] and all(u.startswith("file:") for u in requests), (errors, requests)
        finally:
            br.close()
