"""Boot the real kernel in real QEMU (TCG): every app, both machines, bad input, process hygiene."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from osvtrace.vm import qemu
from osvtrace.vm.qemu import VmConfig
from tests.support.vm import OSVTRACE, ROOT, osvtrace, our_qemus

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]


def boot(kernel, app, *args, machine="microvm", **kw):
    cfg = VmConfig(app, args, kernel=kernel, machine=machine, accel="tcg", timeout=60, **kw)
    outcome, vm = qemu.run(cfg)
    return outcome, vm.console_text(), vm


@pytest.mark.parametrize("app, args, expect", [
    ("hello", ("a", "b c"), "argv[2] = b c"),
    ("pingpong", ("2000",), "pingpong: 2000 passes each way"),
    ("tpbench", ("20000",), "tpbench: disabled"),
    ("sleep", ("30",), ""),
])
def test_app_boots_and_exits_0_on_microvm(kernel, app, args, expect):
    outcome, console, vm = boot(kernel, app, *args)
    assert (outcome.kind, outcome.app_status) == ("app", 0), console
    assert expect in console
    assert vm.boot is not None and vm.boot.tsc_hz > 0, console


def test_hello_on_q35(kernel):
    outcome, console, vm = boot(kernel, "hello", machine="q35")
    assert (outcome.kind, outcome.app_status) == ("app", 0), console
    assert "Hello" in console and vm.boot is not None


def test_sleep_takes_its_time(kernel):
    t0 = time.monotonic()
    outcome, console, _ = boot(kernel, "sleep", "300")
    assert outcome.app_status == 0, console
    assert time.monotonic() - t0 >= 0.3


def test_boot_time_is_measured(kernel):
    """QEMU start to app main on microvm: host wall clock and the kernel's TSC (target 100 ms;
    here only a loose bound so a loaded machine does not fail the suite: tests/bench has the figure)."""
    _, console, vm = boot(kernel, "hello")
    assert vm.boot is not None, console
    assert 0 < vm.boot.host_ms < 2000
    assert vm.boot.guest_app_us > 0 and vm.boot.guest_entry_us >= 0


@pytest.mark.parametrize("cmdline, message", [
    ({"app": "nosuchapp"}, "kernel: unknown app 'nosuchapp'"),
    ({"app": "hello", "trace": "nosuchtracepoint"}, "trace: 'nosuchtracepoint' matches no tracepoint"),
    ({"app": "hello", "trace": "sched_switc"}, "matches no tracepoint"),  # anchored: no prefix match
    ({"app": "hello", "tracebuf": "1"}, "cmdline: tracebuf=1 out of range"),
    ({"app": "hello", "tracebuf": "lots"}, "cmdline: bad tracebuf 'lots'"),
    ({"app": "hello", "tracemode": "sideways"}, "cmdline: bad tracemode 'sideways'"),
    ({"app": "hello", "tracebt": "trace_lost"}, "tracebt: 'trace_lost' matches no tracepoint that takes a stack"),
    ({"app": "hello", "sampler": 20000}, "cmdline: bad sampler '20000'"),
])
def test_bad_command_line_is_refused_clearly(kernel, cmdline, message):
    app = cmdline.pop("app")
    outcome, console, vm = boot(kernel, app, **cmdline)
    assert message in console
    assert outcome.kind == "app" and outcome.app_status != 0 and vm.refused


def test_bad_app_arguments_fail(kernel):
    outcome, console, _ = boot(kernel, "pingpong", "zero")
    assert outcome.app_status != 0 and "usage: pingpong" in console


def test_panic_maps_to_255(kernel):
    outcome, console, _ = boot(kernel, "crash", "panic")
    assert outcome.kind == "panic" and outcome.exit_code == 255
    assert "backtrace" in console


# ---------------------------------------------------------------- the CLI, as a user runs it

def test_cli_run_streams_the_console_and_exits_with_the_app_status(kernel):
    r = osvtrace("run", "--no-build", "hello", "x")
    assert r.returncode == 0, r.stderr
    assert "Hello" in r.stdout and "argv[1] = x" in r.stdout
    r = osvtrace("run", "--no-build", "pingpong", "zero")
    assert r.returncode == 2 and "usage: pingpong" in r.stdout
    assert r.stderr.strip() == "osvtrace: app exited with status 2"


def test_cli_run_unknown_app(kernel):
    r = osvtrace("run", "--no-build", "nosuchapp")
    assert r.returncode == 125
    assert "kernel: unknown app 'nosuchapp'" in r.stdout
    assert "refused" in r.stderr and "Traceback" not in r.stderr


def test_cli_run_timeout_stops_qemu(kernel):
    t0 = time.monotonic()
    r = osvtrace("run", "--no-build", "--timeout", "0.5", "sleep", "60000")
    assert r.returncode == 124 and "timed out after 0.5 s" in r.stderr
    assert "terminating on signal" not in r.stderr  # our own stop is not reported as news
    assert time.monotonic() - t0 < 20


def _wait_for_qemu(before: set[int], timeout: float = 10) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = our_qemus() - before
        if new:
            return new
        time.sleep(0.05)
    pytest.fail("QEMU did not start")


def test_ctrl_c_ends_qemu(kernel):
    before = our_qemus()
    p = subprocess.Popen(OSVTRACE + ["run", "--no-build", "sleep", "60000"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _wait_for_qemu(before)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130 and "interrupted" in err


def test_sigterm_ends_qemu(kernel):
    before = our_qemus()
    p = subprocess.Popen(OSVTRACE + ["run", "--no-build", "sleep", "60000"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _wait_for_qemu(before)
    p.terminate()
    p.communicate(timeout=20)
    assert p.returncode == 130


def test_qemu_dies_with_a_killed_osvtrace(kernel):
    """Even SIGKILL (no cleanup code runs) leaves no orphan: PR_SET_PDEATHSIG."""
    before = our_qemus()
    p = subprocess.Popen(OSVTRACE + ["run", "--no-build", "sleep", "60000"], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _wait_for_qemu(before)
    p.kill()
    p.wait(10)


def test_missing_qemu_says_how_to_install(kernel, tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no qemu-system-x86_64 anywhere
    r = osvtrace("run", "--no-build", "hello", env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == ("osvtrace: qemu-system-x86_64 not found: install it with "
                                "apt-get install qemu-system-x86")


def test_cli_build_is_quick_when_up_to_date(kernel):
    t0 = time.monotonic()
    r = osvtrace("build")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "kernel: " in r.stdout and "Nothing to be done" not in r.stdout + r.stderr
    assert time.monotonic() - t0 < 30
