"""The QEMU launcher: command line, process lifetime, console, exit status, boot time.

One job: start ``qemu-system-x86_64`` on the kernel with the options of
``osvtrace run``/``record``, stream its console, and turn its exit status back
into what happened in the guest. QEMU never outlives osvtrace (osvtrace.vm.proc).

Exit status (kernel/arch/x64/debug_exit.cc): the guest writes v to the
isa-debug-exit port and QEMU exits with (v << 1) | 1; v = s + 1 for an app
status s in 0..125, 127 for a panic.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from osvtrace import resources
from osvtrace.errors import OsvtraceError
from osvtrace.kernels import reference
from osvtrace.vm.proc import end_process, spawn

DEFAULT_KERNEL = resources.default_kernel()
QEMU = "qemu-system-x86_64"
MACHINES = ("microvm", "q35")
ACCELS = ("auto", "tcg", "kvm")
MAX_APP_STATUS = 125  # debug_exit::max_app_status
BOOT_LINE = re.compile(rb"boot: app main at (\d+) us \(kernel entry at (\d+) us, TSC (\d+) Hz\)")
REFUSED_LINE = b"kernel: not starting anything"
CONSOLE_KEEP = 16 << 20  # console bytes kept in memory for callers (the stream itself is unbounded)
KERNEL_OPTIONS = ("app=", "trace=", "tracebt=", "sampler=", "tracebuf=", "tracemode=", "virtio_mmio.")

# CLI exit codes for outcomes that are not an app status (app statuses are 0..125).
EXIT_TIMEOUT = 124
EXIT_RESET = 254
EXIT_PANIC = 255


class QemuError(OsvtraceError):
    """QEMU is missing, refused its options or could not be controlled."""


class QemuMissing(QemuError):
    def __init__(self) -> None:
        super().__init__(f"{QEMU} not found: install it with apt-get install qemu-system-x86")


@dataclass
class VmConfig:
    """What to boot and how: the options common to `osvtrace run` and `record`."""

    app: str
    args: tuple[str, ...] = ()
    kernel: Path = DEFAULT_KERNEL
    smp: int = 1
    mem_mb: int = 256
    machine: str = "microvm"
    accel: str = "auto"
    tcg_thread: str | None = None  # single | multi (QEMU's default): how TCG maps vCPUs to host threads
    trace: str | None = None  # comma-separated anchored globs -> trace=
    tracebuf: str | None = None  # per-CPU ring size (64K, 4M ...) -> tracebuf=
    tracemode: str | None = None  # overwrite | stream -> tracemode=
    tracebt: str | None = None  # comma-separated anchored globs whose records carry stacks -> tracebt=
    sampler: int | None = None  # samples per second per CPU -> sampler=
    gdb_port: int | None = None  # gdbstub on 127.0.0.1:PORT
    gdb_wait: bool = False  # start halted (-S) until gdb continues
    timeout: float | None = None  # seconds of wall time before QEMU is stopped
    net: str | None = None  # None: no NIC; user: QEMU's user-mode network (slirp); tap: a host tap device
    hostfwd: tuple[str, ...] = ()  # --net user: forwarded ports, udp:HOSTPORT-:GUESTPORT
    tap_ifname: str | None = None  # --net tap: the host interface (default osvtrace0)
    # Hooks for transports: more QEMU arguments (devices, chardevs, memory
    # backends) and more kernel command-line words.
    extra_args: list[str] = field(default_factory=list)
    extra_cmdline: list[str] = field(default_factory=list)
    # A kernel that boots from a disk image (real OSv: osvtrace.vm.osv_image.qemu_args) gives
    # its whole QEMU line here; `kernel` is then the ELF gdb reads, and the options above that
    # shape our kernel's line (machine, trace, tracebuf, net) are not used.
    command: tuple[str, ...] = ()


# ---------------------------------------------------------------- command line

def kvm_usable() -> bool:
    """KVM only where the CPU really has it: this project's hosts have a /dev/kvm that
    emulates instructions (~500x slower than TCG), and no vmx/svm flag (PLATFORM.md)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    if not re.search(r"\b(vmx|svm)\b", flags):
        return False
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def pick_accel(accel: str) -> str:
    """The accelerator to use: `auto` becomes kvm or tcg; a forced choice is kept."""
    if accel not in ACCELS:
        raise QemuError(f"unknown accelerator {accel!r} (choose from {', '.join(ACCELS)})")
    if accel == "auto":
        return "kvm" if kvm_usable() else "tcg"
    return accel


def _quote(word: str) -> str:
    """A word for the kernel's command line (spaces separate, double quotes group)."""
    if '"' in word:
        raise QemuError(f"app argument {word!r}: the kernel command line cannot carry a double quote")
    if not word or any(c in word for c in " \t\n"):
        return f'"{word}"'
    return word


def kernel_cmdline(cfg: VmConfig) -> str:
    """The -append string: kernel options first, then app=NAME and its arguments."""
    if not cfg.app or any(c in cfg.app for c in ' \t\n"='):
        raise QemuError(f"bad app name {cfg.app!r}")
    words = list(cfg.extra_cmdline)
    if cfg.trace:
        globs = ",".join(g.strip() for g in cfg.trace.split(",") if g.strip())
        if any(c in globs for c in ' \t\n"'):
            raise QemuError(f"bad --trace {cfg.trace!r}: globs are names with * and ?, separated by commas")
        words += reference.KERNEL.trace_words(globs.split(","))
    if cfg.tracebt:
        globs = ",".join(g.strip() for g in cfg.tracebt.split(",") if g.strip())
        if any(c in globs for c in ' \t\n"'):
            raise QemuError(f"bad --tracebt {cfg.tracebt!r}: globs are names with * and ?, separated by commas")
        words.append(f"tracebt={globs}")
    if cfg.sampler:
        words.append(f"sampler={int(cfg.sampler)}")
    if cfg.tracebuf:
        words.append(f"tracebuf={cfg.tracebuf}")
    if cfg.tracemode:
        words.append(f"tracemode={cfg.tracemode}")
    words.append(f"app={cfg.app}")
    args = [_quote(a) for a in cfg.args]
    # `--` hands every later word to the app verbatim; only needed when an argument
    # looks like a kernel option (on microvm QEMU appends virtio_mmio.device= words,
    # which must stay kernel options, so `--` is not used by default).
    if any(a.startswith(KERNEL_OPTIONS) or a == "--" for a in cfg.args):
        args.insert(0, "--")
    return " ".join(words + args)


NETS = ("user", "tap")
HOSTFWD = re.compile(r"^(udp|tcp):(?:(\d{1,3}(?:\.\d{1,3}){3})?:)?(\d{1,5})-(?:(\d{1,3}(?:\.\d{1,3}){3}))?:(\d{1,5})$")
DEFAULT_TAP = "osvtrace0"


def hostfwd_rule(spec: str) -> str:
    """A --hostfwd spec (udp:HOSTPORT-:GUESTPORT, optionally with addresses) -> QEMU's form.

    The host side listens on 127.0.0.1 unless an address is given: forwarded ports are not
    opened to the network by default."""
    m = HOSTFWD.match(spec)
    if not m:
        raise QemuError(f"bad --hostfwd {spec!r}: expected udp:HOSTPORT-:GUESTPORT (or "
                        "udp:HOSTADDR:HOSTPORT-GUESTADDR:GUESTPORT)")
    proto, haddr, hport, gaddr, gport = m.groups()
    for p in (hport, gport):
        if not 1 <= int(p) <= 65535:
            raise QemuError(f"bad --hostfwd {spec!r}: port {p} out of range 1..65535")
    return f"{proto}:{haddr or '127.0.0.1'}:{hport}-{gaddr or ''}:{gport}"


def net_args(cfg: VmConfig) -> list[str]:
    """QEMU arguments for the guest's NIC: a virtio-net device (virtio-mmio on microvm,
    legacy virtio-pci on q35) on a user-mode (slirp) or tap backend."""
    if cfg.net is None:
        if cfg.hostfwd:
            raise QemuError("--hostfwd needs --net user")
        return []
    if cfg.net not in NETS:
        raise QemuError(f"unknown --net {cfg.net!r} (choose from {', '.join(NETS)})")
    if cfg.net == "user":
        # The guest is 10.0.2.15; forwarded datagrams arrive from 10.0.2.2. NOTE: not
        # restrict=on: QEMU 7.2's slirp then drops the guest's replies on forwarded UDP
        # ports. The guest's stack only ever answers (and ARPs), and the forwarded host
        # ports listen on 127.0.0.1 unless a rule names another address.
        backend = ",".join(["user,id=net0"] + [f"hostfwd={hostfwd_rule(h)}" for h in cfg.hostfwd])
    else:
        if cfg.hostfwd:
            raise QemuError("--hostfwd is for --net user (with tap, the guest's 10.0.2.15 is reachable directly)")
        backend = f"tap,id=net0,ifname={cfg.tap_ifname or DEFAULT_TAP},script=no,downscript=no"
    dev = "virtio-net-device,netdev=net0" if cfg.machine == "microvm" else \
        "virtio-net-pci,netdev=net0,disable-modern=on"
    return ["-netdev", backend, "-device", dev]


def qemu_command(cfg: VmConfig, qemu: str = QEMU) -> list[str]:
    """The full QEMU argument vector for a config."""
    if cfg.command:
        cmd = [qemu, *cfg.command[1:]]
        if cfg.gdb_port is not None:
            cmd += ["-gdb", f"tcp:127.0.0.1:{cfg.gdb_port}"] + (["-S"] if cfg.gdb_wait else [])
        return cmd + list(cfg.extra_args)
    if cfg.machine not in MACHINES:
        raise QemuError(f"unknown machine {cfg.machine!r} (choose from {', '.join(MACHINES)})")
    if not 1 <= cfg.smp <= 64:
        raise QemuError(f"--smp {cfg.smp}: the kernel supports 1 to 64 CPUs")
    if cfg.mem_mb < 32:
        raise QemuError(f"--mem {cfg.mem_mb}: the kernel needs at least 32 MB")
    accel = pick_accel(cfg.accel)
    if accel == "tcg" and cfg.tcg_thread:
        if cfg.tcg_thread not in ("single", "multi"):
            raise QemuError(f"tcg thread mode {cfg.tcg_thread!r}: single or multi")
        accel = f"tcg,thread={cfg.tcg_thread}"
    cmd = [qemu, "-M", cfg.machine, "-accel", accel, "-smp", str(cfg.smp), "-m", str(cfg.mem_mb),
           "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
           "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-kernel", str(cfg.kernel), "-append", kernel_cmdline(cfg)]
    if cfg.gdb_port is not None:
        cmd += ["-gdb", f"tcp:127.0.0.1:{cfg.gdb_port}"]
        if cfg.gdb_wait:
            cmd.append("-S")
    return cmd + net_args(cfg) + list(cfg.extra_args)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for the gdbstub)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- exit status

@dataclass
class Outcome:
    """How a VM ended, from QEMU's exit status."""

    qemu_rc: int | None  # None: still running when stopped by us
    kind: str  # app | panic | reset | qemu-error | signal | timeout | stopped | unknown
    app_status: int | None = None

    @property
    def exit_code(self) -> int:
        """The status `osvtrace run` exits with: the app's own, or a code for the rest."""
        if self.kind == "app":
            return self.app_status or 0
        return {"panic": EXIT_PANIC, "timeout": EXIT_TIMEOUT, "stopped": 0}.get(self.kind, EXIT_RESET)

    def describe(self) -> str:
        if self.kind == "app":
            return f"app exited with status {self.app_status}"
        if self.kind == "panic":
            return "kernel panic (message and backtrace above)"
        if self.kind == "reset":
            return "the VM reset without reporting a status (triple fault?)"
        if self.kind == "timeout":
            return "stopped at the timeout"
        if self.kind == "stopped":
            return "stopped by osvtrace"
        if self.kind == "signal":
            return f"QEMU was killed by signal {-(self.qemu_rc or 0)}"
        if self.kind == "qemu-error":
            return "QEMU failed (its message is above)"
        return f"QEMU exited with unexpected status {self.qemu_rc}"


def decode_exit(rc: int) -> Outcome:
    """QEMU's exit status -> outcome (the inverse of kernel/arch/x64/debug_exit.cc)."""
    if rc == 255:
        return Outcome(rc, "panic")
    if rc % 2 == 1 and 3 <= rc <= 2 * MAX_APP_STATUS + 3:
        return Outcome(rc, "app", (rc - 3) // 2)
    if rc == 0:
        return Outcome(rc, "reset")
    if rc == 1:
        return Outcome(rc, "qemu-error")
    if rc < 0:
        return Outcome(rc, "signal")
    return Outcome(rc, "unknown")


# ---------------------------------------------------------------- process

@dataclass
class BootTime:
    """QEMU start to the app's main: the host's wall clock and the kernel's TSC."""

    host_ms: float  # host wall time from starting QEMU to reading the boot line
    guest_app_us: int  # kernel entry to app main (kernel's TSC)
    guest_entry_us: int  # kernel entry on the TSC (QEMU starts the TSC at 0)
    tsc_hz: int


def boot_line(boot: BootTime | None) -> str:
    """The boot time in one line (what `run --verbose` and `record --via gdb --verbose` print)."""
    if boot is None:
        return "boot: the kernel printed no boot line"
    return (f"boot: QEMU start to app main {boot.host_ms:.1f} ms host wall clock; kernel entry to app main "
            f"{boot.guest_app_us / 1000:.1f} ms, kernel entry at {boot.guest_entry_us / 1000:.1f} ms (guest TSC)")


class Vm:
    """A running QEMU: ``with Vm(cfg) as vm: outcome = vm.wait()``. Leaving the block
    stops QEMU if it still runs (also on Ctrl-C and errors)."""

    def __init__(self, cfg: VmConfig, *, console: BinaryIO | None = None, stderr: BinaryIO | None = None,
                 qemu: str = QEMU):
        self.cfg = cfg
        self._console_out = console  # where console bytes go as they arrive (None: kept only)
        self._stderr_out = stderr
        self.qemu = qemu
        self.proc: subprocess.Popen | None = None
        self.console = bytearray()
        self.errors = bytearray()
        self.boot: BootTime | None = None
        self.started_at = 0.0
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifetime

    def start(self) -> "Vm":
        if shutil.which(self.qemu) is None:
            raise QemuMissing()
        if not Path(self.cfg.kernel).is_file():
            raise QemuError(f"no kernel at {self.cfg.kernel}: run `osvtrace build` first")
        cmd = qemu_command(self.cfg, self.qemu)
        self.command = cmd
        self.started_at = time.perf_counter()
        # stdin is /dev/null: a QEMU with a terminal on stdin would switch it to raw
        # mode (and, in its own session, fight us for it).
        self.proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._readers = [threading.Thread(target=self._pump_console, daemon=True, name="qemu-console"),
                         threading.Thread(target=self._pump_stderr, daemon=True, name="qemu-stderr")]
        for t in self._readers:
            t.start()
        return self

    def __enter__(self) -> "Vm":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """End QEMU now (SIGTERM, then SIGKILL) and collect its output."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._stderr_out = None  # QEMU's "terminating on signal 15" is our doing: not news
        end_process(self.proc)
        self._join_readers()

    def wait(self, timeout: float | None = None) -> Outcome:
        """Wait for QEMU to exit (at most `timeout` seconds, default the config's);
        on timeout QEMU is stopped and the outcome says so."""
        assert self.proc is not None, "start() first"
        timeout = self.cfg.timeout if timeout is None else timeout
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return Outcome(self.proc.returncode, "timeout")
        self._join_readers()
        out = decode_exit(rc)
        if out.kind == "qemu-error":
            msg = self.errors.decode("utf-8", "replace").strip().splitlines()
            raise QemuError("QEMU failed: " + (msg[-1] if msg else f"exit status {rc}, no message"))
        return out

    @property
    def refused(self) -> bool:
        """The kernel printed that it refused to start the app (bad command line)."""
        return REFUSED_LINE in self.console

    def console_text(self) -> str:
        with self._lock:
            return self.console.decode("utf-8", "replace")

    # ------------------------------------------------------------ output pumps

    def _join_readers(self) -> None:
        for t in self._readers:
            t.join(5)

    def _pump_console(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        line = bytearray()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            now = time.perf_counter()
            if self._console_out is not None:
                try:
                    self._console_out.write(data)
                    self._console_out.flush()
                except (OSError, ValueError):
                    self._console_out = None  # our stdout went away (a closed pipe): keep running
            with self._lock:
                if len(self.console) < CONSOLE_KEEP:
                    self.console += data
            if self.boot is None:
                line += data
                m = BOOT_LINE.search(line)
                if m:
                    self.boot = BootTime((now - self.started_at) * 1e3, int(m[1]), int(m[2]), int(m[3]))
                elif len(line) > 65536:
                    del line[:-4096]

    def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            if len(self.errors) < CONSOLE_KEEP:
                self.errors += data
            if self._stderr_out is not None:
                try:
                    self._stderr_out.write(data)
                    self._stderr_out.flush()
                except (OSError, ValueError):
                    self._stderr_out = None


def run(cfg: VmConfig, *, console: BinaryIO | None = None,
        stderr: BinaryIO | None = None) -> tuple[Outcome, Vm]:
    """Boot, stream the console, wait for the end (or the timeout): the outcome and the Vm."""
    with Vm(cfg, console=console, stderr=stderr) as vm:
        out = vm.wait()
    return out, vm

