"""The Linux guest of tests/bench/bench_linux.py boots under our QEMU command line, and each of
its programs runs and prints the line the benchmark parses."""

from __future__ import annotations

import pytest

from tests.bench.linux import guest

# Slow (make test-slow): the guest is built from Debian's kernel package and a static initramfs,
# ~100 s on a fresh machine, for checks of the benchmark's own harness; `make bench` needs
# the same guest and fails loudly if it does not boot.
pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.fixture(scope="module")
def built(kernel) -> None:  # noqa: ANN001  (our kernel too: the guest's TSC rate comes from booting our hello)
    guest.build()


def _run(app: str, *args: str, smp: int = 1) -> guest.Run:
    cfg = guest.config("linux", app, args, smp=smp)
    r, _ = guest.run(cfg, "multi", timeout=120, boot_mark=guest.BOOT_MARKER["linux"], marks=(guest.APP_MARKER["linux"],))
    assert r.outcome.kind == "app" and r.outcome.app_status == 0, r.console[-1500:]
    return r


def test_vmlinux_from_the_debian_package_has_the_pvh_note(built: None) -> None:
    assert guest.has_pvh_note(guest.VMLINUX.read_bytes())


def test_guest_boots_to_hello_and_reports_the_status_through_debug_exit(built: None) -> None:
    r = _run("hello")
    assert guest.APP_MARKER["linux"] in r.marks and 0 < r.marks[guest.APP_MARKER["linux"]] < 60
    assert "linux: app exited with status 0" in r.console


@pytest.mark.parametrize("mode", ["futex", "condvar"])
def test_pingpong_prints_ns_per_pass(built: None, mode: str) -> None:
    f = _run("pingpong", mode, "500", smp=2).fields("pingpong:")
    assert f["mode"] == mode and f["passes"] == "1000" and int(f["ns_per_pass"]) > 0


def test_mutex_counts_every_acquisition_and_loses_no_update(built: None) -> None:
    f = _run("mutex", "--threads", "4", "--mutexes", "2", "--iterations", "500", "--hold-ns", "200",
             "--think-ns", "100", smp=2).fields("mutex:")
    assert f["acquisitions"] == "2000" and f["lost_updates"] == "0" and int(f["rate"].removesuffix("/s")) > 0


def test_udp_echo_answers_through_virtio_net_and_hostfwd(built: None) -> None:
    from osvtrace.loadgen import load
    from tests.support.net import free_udp_port

    port = free_udp_port()
    cfg = guest.config("linux", "udp-echo", ("7", "--idle-exit", "500"), net=True, hostfwd=(f"udp:{port}-:7",))
    with guest.Guest(cfg, "multi", marks=(b"listening on udp port",)) as g:
        assert g.wait_mark(b"listening on udp port", 60), g.finish(0).console[-1500:]
        # at most 32 in flight and a drain that ends when all are answered (up to 30 s): a guest the
        # loaded host runs late then delays replies but cannot drop them (was: 1 s of drain)
        res = load.run("udp", f"127.0.0.1:{port}", rate=200, duration=0.5, conns=4, drain=30, window=32)
        r = g.finish(60)
    assert res.bad == 0 and res.answered >= res.sent * 0.95, res.summary()
    assert r.outcome.app_status == 0 and int(r.fields("udp-echo:")["requests"]) >= res.answered, r.console[-800:]
