"""Debian's memcached, unmodified, on real OSv, recorded by `osvtrace record --kernel osv`
while the host drives it over a forwarded UDP port: what the OSv memcached test, the bench
line and docs/osv.md ("Real programs: memcached on OSv") run.

    with OsvMemcached(image, out) as m:      # record starts; OSv boots memcached
        m.wait_ready()                        # memcached answers `version` over UDP
        ... m.client() / loadgen.run("memcache", m.target, ...)
        doc = m.shutdown()                    # memcached's own `shutdown graceful` (-A): the app
                                              # ends, the recording with it; record's --json

Or from the shell, everything (image, recording, checks, load, reports' input):

    python -m tests.support.osv_memcached -o mc.osvt --rate 300 --duration 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from osvtrace.loadgen import memcache_udp as mc
from osvtrace.vm import osv_image
from osvtrace.vm.proc import end_process, spawn
from osvtrace.vm.qemu import pick_accel
from tests.support.net import free_udp_port
from tests.support.vm import OSVTRACE, ROOT

GUEST_PORT = 11211
# -U: UDP on 11211 (TCP off, -p 0: the load generator speaks UDP); -t 2: two worker threads
# on the two vCPUs; -A: the `shutdown` command (shutdown() says which), so the app ends when
# the host says and the recording ends at the app's end, as for any OSv app. -u root:
# memcached refuses uid 0 without it; OSv maps every user to uid 0 (libc/user.cc).
APP = ("/usr/bin/memcached", "-u", "root", "-U", str(GUEST_PORT), "-p", "0", "-t", "2", "-m", "64", "-A")
TRACE = "sched*,mutex*,condvar*,net_packet*"
READY_TIMEOUT = 180.0  # boot under TCG on a loaded 2-core machine: OSv's banner alone can take 10-60 s


class OsvMemcachedError(RuntimeError):
    """memcached on OSv did not come up or did not end: the message has the recorder's output."""


class _Guest:
    """What both ways of running memcached on OSv share: the forwarded port and its readiness."""

    port: int
    proc: subprocess.Popen | None = None
    ready_seconds = 0.0

    def _died(self, what: str) -> OsvMemcachedError:
        """The error for a VM that ended early (`what` happened), with what it left to say."""
        raise NotImplementedError

    def client(self, timeout: float = 5.0) -> mc.Client:
        return mc.Client("127.0.0.1", self.port, timeout=timeout)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> str:
        """memcached's `version` line, once it answers on the forwarded port."""
        t0 = time.monotonic()
        with self.client(timeout=0.5) as c:
            while time.monotonic() - t0 < timeout:
                if self.proc is None or self.proc.poll() is not None:
                    raise self._died("ended before memcached answered")
                try:
                    v = c.request(b"version\r\n")
                except (socket.timeout, ConnectionRefusedError):
                    continue
                if v.startswith(b"VERSION"):
                    self.ready_seconds = time.monotonic() - t0
                    return v.decode().strip()
        raise OsvMemcachedError(f"memcached on OSv did not answer `version` within {timeout:g} s")


class OsvMemcached(_Guest):
    """`osvtrace record --kernel osv` of memcached in the background, the host's UDP port
    forwarded to the guest's 11211; `options`: more of record's (--backtrace, --duration S)."""

    def __init__(self, image: Path, out: Path, *, via: str = "shm", smp: int = 2, trace: str = TRACE,
                 app: tuple[str, ...] = APP, timeout: float = 900.0, options: tuple[str, ...] = ()):
        self.port = free_udp_port()
        self.target = f"127.0.0.1:{self.port}"
        self.out = out
        self.cmd = [*OSVTRACE, "record", "--kernel", "osv", "--via", via, "--image", str(image), "--smp", str(smp),
                    "--trace", trace, "--hostfwd", f"udp:{self.port}-:{GUEST_PORT}", "--timeout", str(timeout),
                    *options, "--json", "-o", str(out), *app]

    def __enter__(self) -> "OsvMemcached":
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            end_process(self.proc)  # a failed test: the recorder ends QEMU and gdb on its way out

    def _died(self, what: str) -> OsvMemcachedError:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=60) if self.proc.poll() is not None else ("", "")
        return OsvMemcachedError(f"the recording {what} (record exited {self.proc.returncode}): "
                                 f"{out[-1500:]}{err[-3000:]}")

    def shutdown(self, timeout: float = 300.0) -> dict:
        """memcached's `shutdown graceful`; record's --json summary. Graceful: memcached then
        stops and joins every thread of its own before main returns. A plain `shutdown` only
        returns from main, and OSv, which has no exit() that kills a process's threads
        (core/app.cc: its __libc_start_main runs main, then pthread_exit), waits for the app's
        last thread: the workers in epoll_wait and the maintenance threads never end."""
        assert self.proc is not None
        with self.client(timeout=0.5) as c:
            c.request(b"shutdown graceful\r\n", expect_reply=False, settle=0.2)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            end_process(self.proc)
            raise OsvMemcachedError(f"memcached on OSv did not end within {timeout:g} s of `shutdown`") from None
        if self.proc.returncode:
            raise OsvMemcachedError(f"record exited {self.proc.returncode}: {out[-1500:]}{err[-3000:]}")
        return json.loads(out)


class PlainOsvMemcached(_Guest):
    """memcached on OSv under QEMU with no recording and no tracepoint enabled (the bench's
    baseline): the same image, QEMU line and forwarded port as `record --kernel osv`."""

    def __init__(self, image: Path, *, smp: int = 2, app: tuple[str, ...] = APP):
        self.port = free_udp_port()
        self.target = f"127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="osv-memcached-"))
        disk = osv_image.image_with_cmdline(image, osv_image.cmdline(app[0], app[1:], []), self.tmp)
        self.cmd = osv_image.qemu_args(disk, smp=smp, mem_mb=1024, accel=pick_accel("auto"),
                                       hostfwd=(f"udp:{self.port}-:{GUEST_PORT}",))

    def __enter__(self) -> "PlainOsvMemcached":
        self.proc = spawn(self.cmd, stdin=subprocess.DEVNULL, stdout=open(self.tmp / "console.txt", "wb"),
                          stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            end_process(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _died(self, what: str) -> OsvMemcachedError:
        console = (self.tmp / "console.txt").read_text(errors="replace")[-2000:]
        return OsvMemcachedError(f"QEMU {what}: {console}")


def check_sets_and_gets(m: _Guest, n: int = 20) -> list[tuple[bytes, bytes]]:
    """Sets n keys, reads each back, deletes one; (request, reply) pairs, each checked."""
    seen = []
    with m.client() as c:
        for i in range(n):
            v = f"osv-{i}-".encode() * (i + 1)
            r = c.request(mc.set_(f"k{i}", v, flags=i))
            assert r == b"STORED\r\n", (i, r)
            seen.append((b"set", r))
        for i in range(n):
            v = f"osv-{i}-".encode() * (i + 1)
            r = c.request(mc.get(f"k{i}"))
            assert r == f"VALUE k{i} {i} {len(v)}\r\n".encode() + v + b"\r\nEND\r\n", (i, r)
            seen.append((b"get", r))
        assert c.request(mc.delete("k0")) == b"DELETED\r\n"
        assert c.request(mc.get("k0")) == b"END\r\n"
    return seen


def main(argv: list[str] | None = None) -> int:
    from osvtrace.loadgen import load
    from tests.support.osv_app_image import app_image, cache_dir

    ap = argparse.ArgumentParser(description="Record Debian's memcached on OSv under load from the host.")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--rate", type=float, default=300.0, help="requests/s (open loop)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    ap.add_argument("--set-ratio", type=float, default=0.1)
    ap.add_argument("--via", default="shm", choices=("shm", "gdb"))
    a = ap.parse_args(argv)
    tree = osv_image.default_tree()
    if not (tree / "build" / "release" / "loader.img").is_file():
        print(f"no OSv build at {tree}: run ../shared/osv/build.sh first", file=sys.stderr)
        return 2
    image = app_image("memcached", tree, cache_dir())
    with OsvMemcached(image, a.output.resolve(), via=a.via) as m:
        print(f"memcached on OSv: {m.wait_ready()} after {m.ready_seconds:.1f} s, host port {m.port}", file=sys.stderr)
        print(f"checked {len(check_sets_and_gets(m))} sets and gets", file=sys.stderr)
        res = load.run("memcache", m.target, rate=a.rate, duration=a.duration, set_ratio=a.set_ratio)
        print(res.render(), file=sys.stderr)
        doc = m.shutdown()
    print(json.dumps({"load": res.summary(), "record": doc}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
