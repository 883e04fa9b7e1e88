"""The capture interface (osvtrace.capture.base): every transport the recorder offers returns
the same result, the CLI offers exactly the registered transports, and recovery (no VM) fits
the same result. Real QEMU under TCG."""

from __future__ import annotations

from pathlib import Path

import pytest

import osvtrace
from osvtrace.capture import recorder
from osvtrace.capture.base import Captured, VmCapture
from osvtrace.vm.qemu import VmConfig
from tests.support.vm import osvtrace as cli
from tests.support.vm import require_tools

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]

# `record --json`'s keys for every --via (docs/cli.md); each transport adds its extras.
RECORD_KEYS = {"output", "via", "stop", "events", "slots", "cpus", "lost", "lost_per_cpu", "seconds", "bytes"}


@pytest.fixture(params=list(recorder.TRANSPORTS))
def via(request: pytest.FixtureRequest) -> str:
    """Each registered transport's name (gdb's needs gdb installed)."""
    if request.param == "gdb":
        require_tools("gdb")
    return request.param


def click_unset() -> object:
    """click 8.2's "no default given" sentinel (older clicks say None)."""
    import click.core

    return getattr(click.core, "UNSET", None)


def test_record_via_offers_exactly_the_registered_transports():
    from osvtrace.cli.record_cmds import record

    via = next(p for p in record.params if p.name == "via")
    assert list(recorder.TRANSPORTS) == ["virtio", "shm", "gdb"]
    # every kernel's transports, ours first (rest: OSv's REST API, --kernel osv only)
    assert list(via.type.choices) == recorder.VIA_NAMES == ["virtio", "shm", "gdb", "rest"]
    assert via.default in (None, click_unset())  # each kernel's first transport: virtio for ours, gdb for OSv
    assert list(recorder.KERNEL_TRANSPORTS) == ["osvtrace", "osv"]
    assert recorder.KERNEL_TRANSPORTS["osvtrace"] is recorder.TRANSPORTS
    for kernel, transports in recorder.KERNEL_TRANSPORTS.items():
        assert set(transports) <= set(via.type.choices), kernel
        for name, transport in transports.items():
            assert issubclass(transport, VmCapture) and transport.name == name
    assert set(via.type.choices) == {name for transports in recorder.KERNEL_TRANSPORTS.values() for name in transports}


def test_every_transport_returns_the_same_result_fields(kernel, tmp_path, via):
    out = tmp_path / f"{via}.osvt"
    cfg = VmConfig("pingpong", ("200",), kernel=kernel, accel="tcg", trace="sched_*", timeout=120)
    res = recorder.record(cfg, out, via)
    assert isinstance(res, Captured) and res.via == via, res
    assert (res.stop, res.exit_code, res.failure, res.refused) == ("app-exit", 0, None, False), res.console[-2000:]
    assert res.saved and res.cpus == 1 and res.lost == {0: 0} and res.seconds > 0
    assert (res.events is None) != (res.slots is None)  # each counts what it knows: records or slots
    doc = res.to_json()
    assert set(doc) == RECORD_KEYS | set(res.extras) and set(res.extras).isdisjoint(RECORD_KEYS)
    assert doc["lost_per_cpu"] == {"0": 0} and doc["bytes"] == out.stat().st_size
    assert res.summary.startswith("recorded ") and res.summary.count("\n") == 0 and str(res.path) in res.summary
    with osvtrace.open(res.path) as t:
        assert t.meta.capture == via and len(t) > 0
        if res.events is not None:
            assert len(t) == res.events


def test_recovery_fits_the_same_result_and_reads_what_shm_read(kernel, tmp_path):
    cfg = VmConfig("pingpong", ("200",), kernel=kernel, accel="tcg", trace="sched_*", timeout=120)
    shm = recorder.record(cfg, tmp_path / "s.osvt", "shm", keep_ram=True)
    ram = shm.extras["ram_file"]
    try:
        rec = recorder.recover(ram, kernel, tmp_path / "r.osvt")
    finally:
        Path(ram).unlink(missing_ok=True)
    assert isinstance(rec, Captured) and rec.outcome is None and rec.exit_code == 0 and rec.failure is None
    assert (rec.slots, rec.cpus, rec.lost) == (shm.slots, shm.cpus, shm.lost)
    assert set(rec.to_json()) == {"output", "slots", "cpus", "lost", "threads"}  # `recover --json`'s keys
    assert rec.summary.startswith(f"recovered {rec.slots:,} slots on 1 CPU(s), 0 lost, ")


def test_every_transport_exits_124_at_the_timeout(kernel, tmp_path, via):
    r = cli("record", "--no-build", "--via", via, "--timeout", "4", "-o", str(tmp_path / "t.osvt"),
            "--trace", "trace_marker", "tpstorm", "--rate", "1000", "--seconds", "120")
    assert r.returncode == 124, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


def test_a_refused_command_line_is_the_same_line_and_status_whatever_the_transport(kernel, tmp_path, via):
    r = cli("record", "--no-build", "--via", via, "-o", str(tmp_path / "x.osvt"), "nosuchapp")
    assert r.returncode == 125, r.stdout + r.stderr
    assert r.stderr.strip() == "osvtrace: the kernel refused to start the app (its message is above); no trace saved"
    assert not (tmp_path / "x.osvt").exists()
