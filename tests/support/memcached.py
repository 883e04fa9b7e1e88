"""A real memcached from Debian on 127.0.0.1, for checking our client and our kv app
against a server we did not write. Missing memcached fails the test (never skips)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager

import pytest

from osvtrace.loadgen import memcache_udp as mc
from tests.support.net import free_udp_port


@contextmanager
def real_memcached():
    """Yields the UDP port of a fresh memcached (UDP on, TCP off, 127.0.0.1 only)."""
    exe = shutil.which("memcached")
    if exe is None:
        pytest.fail("memcached not installed: these tests need it (make deps installs it: apt-get install "
                    "memcached)", pytrace=False)
    port = free_udp_port()
    cmd = [exe, "-U", str(port), "-p", "0", "-l", "127.0.0.1", "-m", "64", "-t", "2"]
    if os.getuid() == 0:
        cmd += ["-u", pwd.getpwuid(0).pw_name]  # memcached refuses root without -u
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        with mc.Client("127.0.0.1", port, timeout=0.2) as c:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"memcached exited: {proc.stderr.read().decode()}", pytrace=False)
                try:
                    if c.request(b"version\r\n").startswith(b"VERSION"):
                        break
                except (socket.timeout, ConnectionRefusedError):
                    pass
            else:
                pytest.fail("memcached did not answer on UDP within 10 s", pytrace=False)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
