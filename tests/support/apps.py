"""Boot an app of the kernel and read the key=value lines it prints."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from osvtrace.vm import qemu
from osvtrace.vm.qemu import VmConfig


@dataclass
class Boot:
    rc: int
    console: str
    cmd: list[str]

    @property
    def app_status(self) -> int | None:
        o = qemu.decode_exit(self.rc)
        return o.app_status if o.kind == "app" else None

    def line(self, prefix: str) -> str:
        """The last console line starting with prefix (fails the test if none)."""
        lines = [ln for ln in self.console.splitlines() if ln.startswith(prefix)]
        assert lines, f"no line starting with {prefix!r} in:\n{self.console}"
        return lines[-1]


def boot(kernel: Path, app: str, *args: str, smp: int = 1, tcg: str = "multi", machine: str = "microvm",
         mem_mb: int = 256, trace: str | None = None, timeout: float = 120) -> Boot:
    """Boot APP with `-accel tcg,thread=TCG`; a hang past `timeout` fails the test (no lost wake-up
    may go unnoticed)."""
    cfg = VmConfig(app, tuple(args), kernel=kernel, smp=smp, machine=machine, mem_mb=mem_mb, accel="tcg",
                   trace=trace)
    cmd = qemu.qemu_command(cfg)
    cmd[cmd.index("-accel") + 1] = f"tcg,thread={tcg}"
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        pytest.fail(f"{app} {' '.join(args)} on {smp} vCPUs (tcg,thread={tcg}) did not finish in {timeout} s "
                    f"(deadlock or lost wake-up?); console:\n{out[-3000:]}")
    return Boot(r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace"), cmd)


def parse_kv(line: str) -> dict[str, str]:
    """`key=value` words of a console line."""
    return dict(re.findall(r"(\w+)=(\S+)", line))
