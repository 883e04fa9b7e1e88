"""Heap mutexes named by where they were allocated (osvtrace/model/heap.py): the mutex app
with --heap 1 keeps its mutexes in one malloc'd block; recorded with memory_malloc's
backtraces, every report names them `heap ...mutex_main+OFF`, and two runs that placed the
block at different addresses still match by name in `osvtrace diff`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import osvtrace
from osvtrace.model import Model
from osvtrace.model.heap import _short
from tests.support.vm import osvtrace as cli

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]


def record(kernel: Path, out: Path, *extra: str) -> tuple[Path, list[int]]:
    r = cli("record", "-o", str(out), "--accel", "tcg", "--no-build", "--kernel", str(kernel), "--trace",
            "mutex_*,memory_*", "--tracebt", "memory_malloc", "mutex", "--threads", "2", "--mutexes", "2",
            "--iterations", "400", "--heap", "1", "--yield-every", "50", *extra, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    addrs = [int(x, 16) for x in re.search(r"mutex: addresses=(\S+)", r.stdout).group(1).split(",")]
    return out, addrs


def test_heap_mutexes_are_named_by_their_allocation_site(kernel, tmp_path):
    path, addrs = record(kernel, tmp_path / "h.osvt")
    m = Model(osvtrace.open(path))
    names = m.object_names(np.array(addrs, np.uint64)).tolist()
    # the block is the app's own allocation: both mutexes inside it, at their offsets
    assert all(n.startswith("heap ") and "mutex_main+0x" in n for n in names), names
    offs = [int(n.rsplit("+", 1)[1], 16) for n in names]
    assert offs[1] - offs[0] == addrs[1] - addrs[0]
    # the raw address is kept beside the name everywhere
    labels = m.name_addresses(np.array(addrs, np.uint64)).tolist()
    assert labels == [f"{n} ({a:#x})" for n, a in zip(names, addrs)]
    r = cli("report", "mutex", str(path), "--json")
    rows = {row["mutex"]: row for row in json.loads(r.stdout)["rows"]}
    assert {rows[a]["mutex_name"] for a in addrs} == set(names), rows


def test_without_the_allocations_stacks_a_heap_mutex_stays_an_address(kernel, tmp_path):
    r = cli("record", "-o", str(tmp_path / "n.osvt"), "--accel", "tcg", "--no-build", "--kernel", str(kernel),
            "--trace", "mutex_*,memory_*", "mutex", "--threads", "2", "--mutexes", "2", "--iterations", "200",
            "--heap", "1", timeout=300)
    assert r.returncode == 0, r.stderr
    a = int(re.search(r"mutex: addresses=(0x[0-9a-f]+)", r.stdout).group(1), 16)
    m = Model(osvtrace.open(tmp_path / "n.osvt"))
    assert m.object_names(np.array([a], np.uint64)).tolist() == [""]


def test_two_runs_match_their_heap_mutexes_by_name_in_diff(kernel, tmp_path):
    a, _ = record(kernel, tmp_path / "a.osvt")
    b, _ = record(kernel, tmp_path / "b.osvt", "--slow-mutex", "2")
    r = cli("diff", str(a), str(b), "--kind", "lock", "--all", "--json")
    assert r.returncode == 0, r.stderr
    keys = {c["key"] for c in json.loads(r.stdout)["changes"] if c["metric"] == "hold"}
    heap = sorted(k for k in keys if k.startswith("heap "))
    assert len(heap) == 2 and all("mutex_main+0x" in k for k in heap), keys


def test_a_site_is_a_function_without_its_parameters():
    assert _short("(anonymous namespace)::mutex_main(int, char**)") == "(anonymous namespace)::mutex_main"
    assert _short("kv_store::kv_store(unsigned long)") == "kv_store::kv_store"
    assert _short("plain") == "plain"
    assert _short("f(std::function<void ()>)") == "f"
