"""The net channel's ring (kernel/lib/spsc_ring.hh) built for the host and run by two
threads, under ThreadSanitizer and optimised (tests/native/spsc_host.cc)."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.native import NATIVE, ROOT, build


@pytest.mark.parametrize("flags, items", [(("-fsanitize=thread", "-O1"), 200_000), (("-O2",), 5_000_000)],
                         ids=["tsan", "O2"])
def test_one_producer_one_consumer_lose_nothing(tmp_path, flags, items):
    exe = build(NATIVE / "spsc_host.cc", tmp_path / "spsc_host", "-std=c++20", f"-I{ROOT / 'kernel'}", *flags)
    r = subprocess.run([str(exe), str(items)], capture_output=True, text=True, timeout=300,
                       env={"TSAN_OPTIONS": "halt_on_error=1"})
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    assert "WARNING: ThreadSanitizer" not in r.stderr, r.stderr[-4000:]
    w = r.stdout.split()
    s = {w[i]: int(w[i + 1]) for i in range(0, len(w) - 1, 2)}
    assert s["got"] == items and s["bad"] == s["out_of_order"] == s["depth_errors"] == 0
