"""The QEMU launcher's pure parts: command line, accelerator choice, exit status (no QEMU needed)."""

from __future__ import annotations

import pytest

from osvtrace.vm import qemu
from osvtrace.vm.qemu import Outcome, QemuError, VmConfig, decode_exit, kernel_cmdline, qemu_command


@pytest.mark.parametrize("rc, kind, status, code", [
    (3, "app", 0, 0), (5, "app", 1, 1), (253, "app", 125, 125), (255, "panic", None, 255),
    (0, "reset", None, 254), (1, "qemu-error", None, 254), (-9, "signal", None, 254), (4, "unknown", None, 254),
])
def test_exit_status_maps_back_to_the_app(rc, kind, status, code):
    o = decode_exit(rc)
    assert (o.kind, o.app_status, o.exit_code) == (kind, status, code)
    assert o.describe()


def test_timeout_and_stop_codes():
    assert Outcome(None, "timeout").exit_code == 124
    assert Outcome(None, "stopped").exit_code == 0


def test_kernel_cmdline():
    cfg = VmConfig("hello", ("a", "b c", ""), trace=" sched_*, mutex_lock ", tracebuf="64K", tracemode="stream")
    assert kernel_cmdline(cfg) == 'trace=sched_*,mutex_lock tracebuf=64K tracemode=stream app=hello a "b c" ""'
    # an argument that looks like a kernel option goes after `--`
    assert kernel_cmdline(VmConfig("hello", ("trace=x",))) == "app=hello -- trace=x"
    with pytest.raises(QemuError, match="double quote"):
        kernel_cmdline(VmConfig("hello", ('a"b',)))
    with pytest.raises(QemuError, match="bad app name"):
        kernel_cmdline(VmConfig("he llo"))
    with pytest.raises(QemuError, match="bad --trace"):
        kernel_cmdline(VmConfig("hello", trace="a b"))
    assert kernel_cmdline(VmConfig("hello", trace="mutex_*", tracebt=" mutex_lock_wait, sched_wait ", sampler=250)) \
        == "trace=mutex_* tracebt=mutex_lock_wait,sched_wait sampler=250 app=hello"
    assert kernel_cmdline(VmConfig("hello", ("sampler=1",))) == "app=hello -- sampler=1"
    with pytest.raises(QemuError, match="bad --tracebt"):
        kernel_cmdline(VmConfig("hello", tracebt="a b"))


def test_qemu_command(monkeypatch):
    monkeypatch.setattr(qemu, "kvm_usable", lambda: False)
    cmd = qemu_command(VmConfig("hello", smp=2, mem_mb=128, machine="q35", gdb_port=4321, gdb_wait=True,
                                extra_args=["-device", "virtio-serial-pci"]))
    joined = " ".join(cmd)
    assert cmd[:5] == ["qemu-system-x86_64", "-M", "q35", "-accel", "tcg"]
    assert "-smp 2" in joined and "-m 128" in joined and "-gdb tcp:127.0.0.1:4321 -S" in joined
    assert "isa-debug-exit,iobase=0xf4,iosize=0x04" in joined and cmd[-2:] == ["-device", "virtio-serial-pci"]
    assert cmd[cmd.index("-append") + 1] == "app=hello"
    with pytest.raises(QemuError, match="unknown machine"):
        qemu_command(VmConfig("hello", machine="pc"))


def test_accel_auto_uses_kvm_only_when_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(qemu, "kvm_usable", lambda: False)
    assert qemu.pick_accel("auto") == "tcg" and qemu.pick_accel("kvm") == "kvm"
    monkeypatch.setattr(qemu, "kvm_usable", lambda: True)
    assert qemu.pick_accel("auto") == "kvm" and qemu.pick_accel("tcg") == "tcg"
    with pytest.raises(QemuError):
        qemu.pick_accel("hax")


def test_kvm_usable_reads_cpu_flags(monkeypatch, tmp_path):
    real = qemu.Path

    def fake(p):
        return tmp_path / "cpuinfo" if p == "/proc/cpuinfo" else real(p)
    (tmp_path / "cpuinfo").write_text("flags\t: fpu sse2 hypervisor\n")
    monkeypatch.setattr(qemu, "Path", fake)
    assert qemu.kvm_usable() is False


def test_build_without_tools_says_how_to_install(tmp_path):
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "osvtrace.cli.main", "build"], capture_output=True, text=True,
                       env=dict(os.environ, PATH=str(tmp_path)))
    assert r.returncode == 2
    assert r.stderr.strip() == ("osvtrace: cannot build the kernel: g++, make, nm not found: install with "
                                "apt-get install -y binutils g++ make")


def test_osv_hostfwd_rules_go_on_its_user_mode_nic_on_loopback_unless_an_address_is_given(tmp_path):
    from osvtrace.vm import osv_image

    args = osv_image.qemu_args(tmp_path / "d.qcow2", smp=2, mem_mb=1024, accel="tcg",
                               hostfwd=("udp:11311-:11211", "tcp:0.0.0.0:8000-:8000"))
    netdev = args[args.index("-netdev") + 1].split(",")
    assert netdev[:4] == ["user", "id=un0", "net=192.168.122.0/24", "host=192.168.122.1"]  # run.sh's network
    assert netdev[4:] == ["hostfwd=udp:127.0.0.1:11311-:11211", "hostfwd=tcp:0.0.0.0:8000-:8000"]
    plain = osv_image.qemu_args(tmp_path / "d.qcow2", smp=1, mem_mb=1024, accel="tcg")
    assert "hostfwd" not in plain[plain.index("-netdev") + 1]
    with pytest.raises(QemuError, match="bad --hostfwd"):
        osv_image.qemu_args(tmp_path / "d.qcow2", smp=1, mem_mb=1024, accel="tcg", hostfwd=("udp:11211",))
