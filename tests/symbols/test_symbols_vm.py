"""A recorded run of the mutex app: the report names the mutexes the app says it used by the
static array element and member that hold them (the trace's build id finds build/kernel.elf)."""

from __future__ import annotations

import json

import pytest

from tests.support.vm import osvtrace

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]


def test_the_mutex_report_names_the_apps_mutexes_by_element_and_member(kernel, tmp_path):
    out = tmp_path / "m.osvt"
    r = osvtrace("record", "-o", str(out), "--smp", "2", "--trace", "mutex_*", "--no-build", "--kernel", str(kernel),
                 "mutex", "--threads", "4", "--mutexes", "3", "--iterations", "300", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("mutex: addresses="))
    addrs = [int(a, 16) for a in line.split("=", 1)[1].split(",")]
    rep = osvtrace("report", "mutex", str(out), "--json")
    assert rep.returncode == 0, rep.stderr
    names = {row["mutex"]: row["mutex_name"] for row in json.loads(rep.stdout)["rows"]}
    assert [names[a] for a in addrs] == [f"mutex_main::slots[{k}].m" for k in range(len(addrs))]
    text = osvtrace("report", "mutex", str(out)).stdout
    assert f"mutex_main::slots[2].m ({addrs[2]:#x})" in text
