"""A terminal driven by tmux: keys in, screen out."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.support.traces import ROOT


class Tmux:
    """One private tmux server (its own socket), one session running a command."""

    def __init__(self, tmp: Path, name: str, command: str, env: dict[str, str], width: int = 110, height: int = 16):
        tmux = shutil.which("tmux")
        assert tmux, "tmux is needed for this test (apt-get install tmux); it must not be skipped"
        self.base = [tmux, "-L", f"osvtrace-test-{os.getpid()}-{name}", "-f", "/dev/null"]
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        r = subprocess.run(self.base + ["new-session", "-d", "-s", name, "-x", str(width), "-y", str(height),
                                        f"cd {ROOT} && env {exports} {command}"], capture_output=True, text=True)
        assert r.returncode == 0, f"tmux cannot start a session: {r.stderr.strip()}"
        self.name = name

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run(self.base + ["send-keys", "-t", self.name, *(["-l"] if literal else []), *keys], check=True)

    def type(self, text: str) -> None:
        # NOTE: tmux reads a ';' ending an argument as a command separator: escape it
        self.keys(text[:-1] + "\\;" if text.endswith(";") else text, literal=True)

    def screen(self) -> str:
        r = subprocess.run(self.base + ["capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return r.stdout

    def wait(self, what: str, timeout: float = 20.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.screen()
            if what in s:
                return s
            time.sleep(0.05)
        raise AssertionError(f"{what!r} never appeared on the screen:\n{self.screen()}")

    def alive(self) -> bool:
        return subprocess.run(self.base + ["has-session", "-t", self.name], capture_output=True).returncode == 0

    def wait_gone(self, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.alive():
            time.sleep(0.05)
        assert not self.alive(), f"the program did not end:\n{self.screen()}"

    def close(self) -> None:
        subprocess.run(self.base + ["kill-server"], capture_output=True)
