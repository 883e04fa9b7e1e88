"""The Linux guest the kernel is compared with, and one runner that boots either guest.

Build (`python -m tests.bench.linux.guest` or `build()`), all under build/linux/, nothing
installed on the host:
- Debian's kernel package (`apt-get download` of the image linux-image-amd64 depends on, plus
  busybox-static; `dpkg-deb -x`);
- vmlinux, the ELF inside the bzImage (XZ, decompressed here): it carries the PVH note, so
  QEMU boots it with `-kernel` exactly as it boots ours, without the ~3.5 s the bzImage's
  own XZ decompression costs under TCG;
- an uncompressed newc initramfs (nothing to decompress at boot): busybox-static, init.sh as
  /init, the virtio-net modules, and the programs in this folder built `gcc -static -O2
  -pthread`.

Run: `Guest` starts QEMU with osvtrace.vm.qemu's command line for either kernel (same machine,
-smp, -m and TCG mode; Linux adds -initrd and its console options), timestamps console lines
as they arrive on the host, and stops QEMU at a timeout: a hung boot never hangs a caller.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from osvtrace.vm import qemu
from osvtrace.vm.proc import end_process, spawn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
OUT = ROOT / "build" / "linux"
VMLINUX = OUT / "vmlinux"
INITRAMFS = OUT / "initramfs.cpio"
PROGRAMS = {"pingpong": "pingpong.c", "mutex": "mutex.c", "udp-echo": "udp_echo.c", "hello": "hello.c",
            "qexit": "qexit.c"}
MODULES = ("virtio_ring", "virtio", "virtio_mmio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
           "failover", "net_failover", "virtio_net")
BUSYBOX_LINKS = ("sh", "mount", "cat", "insmod", "ip", "echo")
# quiet: the kernel's log over the 16550 would cost boot time our kernel does not spend;
# panic=-1 with QEMU's -no-reboot ends the VM on a panic instead of hanging the caller.
# tsc_early_khz + tsc=reliable: under TCG Linux's PIT calibration of the TSC fails now and
# then ("tsc: Unable to calibrate against PIT"; on microvm, with no HPET or ACPI PM timer to
# fall back on, the boot then hangs), and its clocksource watchdog marks a good TSC unstable
# and drops CLOCK_MONOTONIC to 4 ms jiffies. Linux is told the rate our kernel measured
# against the PIT in the same run (tsc_khz()), so both guests' clocks are the same TSC.
LINUX_CMDLINE = ["console=ttyS0", "quiet", "panic=-1", "tsc=reliable"]
APP_MARKER = {"linux": b"linux: app main at", "ours": b"boot: app main at"}
# Seen once the kernel has booted: a run without it in time is a hung boot, tried again.
BOOT_MARKER = {"linux": b"linux: init", "ours": b"boot: app main at"}


class Missing(RuntimeError):
    """A host tool the Linux guest needs is not installed."""


def _need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        raise Missing(f"{tool} not found: install it with apt-get install {package}")


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()[-500:]}")
    return r.stdout


# ---------------------------------------------------------------- build

def _apt_depends() -> str:
    r = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True)
    return r.stdout


def _download(debs: Path) -> tuple[Path, Path]:
    """The kernel image package linux-image-amd64 points at, and busybox-static (cached)."""
    _need("apt-get", "apt")
    _need("dpkg-deb", "dpkg")
    debs.mkdir(parents=True, exist_ok=True)
    image = next(debs.glob("linux-image-*-amd64_*.deb"), None)
    if image is None:
        m = re.search(r"Depends: (linux-image-[\w.+-]+-amd64)", _apt_depends())
        if not m and os.geteuid() == 0:
            _run(["apt-get", "update", "-qq"])  # a fresh machine has no package lists yet
            m = re.search(r"Depends: (linux-image-[\w.+-]+-amd64)", _apt_depends())
        if not m:
            raise Missing("apt-cache knows no linux-image-amd64: run apt-get update")
        _run(["apt-get", "download", m[1]], cwd=debs)
        image = next(debs.glob("linux-image-*-amd64_*.deb"))
    busybox = next(debs.glob("busybox-static_*.deb"), None)
    if busybox is None:
        _run(["apt-get", "download", "busybox-static"], cwd=debs)
        busybox = next(debs.glob("busybox-static_*.deb"))
    return image, busybox


def extract_vmlinux(bzimage: Path, out: Path) -> None:
    """The ELF kernel inside a bzImage: the setup header's payload_offset/length
    (boot protocol 2.08+) locate the compressed vmlinux; Debian's is XZ."""
    b = bzimage.read_bytes()
    setup_sects = b[0x1F1] or 4
    offset, length = struct.unpack_from("<II", b, 0x248)
    payload = b[(setup_sects + 1) * 512 + offset:][:length]
    if payload[:6] != b"\xfd7zXZ\x00":
        raise RuntimeError(f"{bzimage.name}: payload is not XZ (starts {payload[:6].hex()})")
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    if elf[:4] != b"\x7fELF" or not has_pvh_note(elf):
        raise RuntimeError(f"{bzimage.name}: the vmlinux inside has no PVH note (XEN_ELFNOTE_PHYS32_ENTRY)")
    out.write_bytes(elf)


def has_pvh_note(elf: bytes) -> bool:
    """Whether an ELF64 has a "Xen" note of type 18 (XEN_ELFNOTE_PHYS32_ENTRY) in a PT_NOTE
    segment: the entry point QEMU's -kernel uses for PVH boot."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == 18:
                return True
            pos += 12 + (namesz + 3 & ~3) + (descsz + 3 & ~3)
    return False


class Cpio:
    """A newc ("070701") archive written directly, so device nodes (/dev/console) need no root."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ino = 1

    def _entry(self, name: str, mode: int, body: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(body), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        self.ino += 1
        self.data += b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        self.data += b"\0" * (-len(self.data) % 4) + body
        self.data += b"\0" * (-len(self.data) % 4)

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, body: bytes, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFREG | mode, body)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def bytes(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self.data)


def build_programs(out: Path) -> dict[str, Path]:
    _need("gcc", "gcc")
    out.mkdir(parents=True, exist_ok=True)
    built = {}
    for name, src in PROGRAMS.items():
        exe = out / name
        deps = [HERE / src, HERE / "common.h"]
        if not exe.exists() or exe.stat().st_mtime < max(d.stat().st_mtime for d in deps):
            r = subprocess.run(["gcc", "-static", "-O2", "-pthread", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                                str(HERE / src)], capture_output=True, text=True)
            if r.returncode:
                if "cannot find -lc" in r.stderr or "cannot find -lpthread" in r.stderr:
                    raise Missing("static glibc not found: install it with apt-get install libc6-dev")
                raise RuntimeError(f"gcc failed for {src}:\n{r.stderr}")
        built[name] = exe
    return built


def build(quiet: bool = True) -> tuple[Path, Path]:
    """Make build/linux/vmlinux and build/linux/initramfs.cpio (what is there is reused)."""
    image_deb, busybox_deb = _download(OUT / "debs")
    root = OUT / "root"
    if not (root / "boot").is_dir() or not (root / "bin" / "busybox").exists():
        for deb in (image_deb, busybox_deb):
            _run(["dpkg-deb", "-x", str(deb), str(root)])
    if not VMLINUX.exists():
        bz = next((root / "boot").glob("vmlinuz-*"))
        extract_vmlinux(bz, VMLINUX)
    programs = build_programs(OUT / "bin")
    moddir = next((root / "lib" / "modules").iterdir())
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    c.file("init", (HERE / "init.sh").read_bytes())
    c.file("bin/busybox", (root / "bin" / "busybox").read_bytes())
    for link in BUSYBOX_LINKS:
        c.symlink(f"bin/{link}", "busybox")
    for name, exe in programs.items():
        c.file(f"bin/{name}", exe.read_bytes())
    for m in MODULES:
        ko = next(moddir.rglob(f"{m}.ko"), None)
        if ko is None:
            raise RuntimeError(f"{moddir.name} has no {m}.ko")
        c.file(f"lib/modules/{m}.ko", ko.read_bytes(), 0o644)
    INITRAMFS.write_bytes(c.bytes())
    if not quiet:
        print(f"linux guest: {VMLINUX} ({moddir.name}), {INITRAMFS} ({INITRAMFS.stat().st_size >> 10} KiB)")
    return VMLINUX, INITRAMFS


def kernel_release() -> str:
    """The Debian kernel's release (6.1.0-NN-amd64), from the extracted package."""
    return next((OUT / "root" / "lib" / "modules").iterdir()).name


# ---------------------------------------------------------------- run

@dataclass
class Run:
    """How one boot went: the console, when lines arrived (host seconds since QEMU started),
    the outcome and whether it hit the timeout."""

    console: str
    marks: dict[bytes, float]
    outcome: qemu.Outcome
    command: list[str]

    def line(self, prefix: str) -> str | None:
        return next((ln for ln in self.console.splitlines() if ln.startswith(prefix)), None)

    def fields(self, prefix: str) -> dict[str, str]:
        """key=value pairs of every line starting with prefix, merged."""
        out: dict[str, str] = {}
        for ln in self.console.splitlines():
            if ln.startswith(prefix):
                out.update(re.findall(r"(\w+)=(\S+)", ln))
        return out


_tsc_khz: int | None = None


def tsc_khz() -> int:
    """The guest TSC rate in kHz as our kernel calibrates it against the PIT (booting hello
    once; under TCG the guest TSC is the host's, so one figure serves every VM of a run)."""
    global _tsc_khz
    if _tsc_khz is None:
        r, _ = run(config("ours", "hello"), "single", timeout=60)
        m = re.search(r"TSC (\d+) Hz", r.console)
        if not m or r.outcome.app_status != 0:
            raise RuntimeError(f"our hello did not report its TSC rate: {r.console[-500:]}")
        _tsc_khz = int(m[1]) // 1000
    return _tsc_khz


def config(kind: str, app: str, args: tuple[str, ...] = (), *, smp: int = 1, mem_mb: int = 256,
           machine: str = "microvm", net: bool = False, hostfwd: tuple[str, ...] = ()) -> qemu.VmConfig:
    """The same VmConfig for both kernels; Linux only adds its initramfs and console words."""
    if kind == "linux":
        words = LINUX_CMDLINE + [f"tsc_early_khz={tsc_khz()}"]
        cfg = qemu.VmConfig(app, args, kernel=VMLINUX, smp=smp, mem_mb=mem_mb, machine=machine, accel="tcg",
                            extra_args=["-initrd", str(INITRAMFS)], extra_cmdline=words)
    else:
        # our kernel as it boots by default (its idle CPUs poll 50 us for wake-ups before they halt)
        cfg = qemu.VmConfig(app, args, smp=smp, mem_mb=mem_mb, machine=machine, accel="tcg")
    if net:
        cfg.net, cfg.hostfwd = "user", hostfwd
    return cfg


def command(cfg: qemu.VmConfig, tcg: str) -> list[str]:
    """osvtrace's QEMU command with the TCG threading mode made explicit (single: all vCPUs
    on one host thread; multi: one host thread per vCPU, QEMU 7.2's default)."""
    cmd = qemu.qemu_command(cfg)
    cmd[cmd.index("-accel") + 1] = f"tcg,thread={tcg}"
    return cmd


class Guest:
    """``with Guest(cfg, "multi", marks=[b"..."]) as g: g.wait_mark(b"...", 30); run = g.finish(60)``"""

    def __init__(self, cfg: qemu.VmConfig, tcg: str = "multi", marks: tuple[bytes, ...] = ()):
        self.command = command(cfg, tcg)
        self.want = marks
        self.marks: dict[bytes, float] = {}
        self.console = bytearray()
        self._cv = threading.Condition()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Guest":
        if shutil.which(self.command[0]) is None:
            raise qemu.QemuMissing()
        self.t0 = time.perf_counter()
        self.proc = spawn(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._pump, daemon=True, name="guest-console")
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            end_process(self.proc)
            self._reader.join(5)

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 65536)
            now = time.perf_counter() - self.t0
            with self._cv:
                if not data:
                    self._cv.notify_all()
                    return
                self.console += data
                for m in self.want:
                    if m not in self.marks and m in self.console:
                        self.marks[m] = now
                self._cv.notify_all()

    def wait_mark(self, mark: bytes, timeout: float) -> bool:
        """Wait for a console marker (one given in marks); False at the timeout or QEMU's end."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while mark not in self.marks:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None and not self._reader.is_alive()):
                    return mark in self.marks
                self._cv.wait(min(left, 0.5))
            return True

    def finish(self, timeout: float) -> Run:
        """Wait for QEMU to exit (stopping it at the timeout) and return the run."""
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout)
            outcome = qemu.decode_exit(rc)
        except subprocess.TimeoutExpired:
            end_process(self.proc)
            outcome = qemu.Outcome(self.proc.returncode, "timeout")
        self._reader.join(5)
        with self._cv:
            return Run(self.console.decode("utf-8", "replace"), dict(self.marks), outcome, self.command)


def run(cfg: qemu.VmConfig, tcg: str = "multi", *, timeout: float = 120, retries: int = 2,
        marks: tuple[bytes, ...] = (), boot_mark: bytes | None = None,
        boot_timeout: float = 30) -> tuple[Run, int]:
    """Boot, run the app to its end; (the run, how many hung boots were retried). A boot that
    shows no boot_mark within boot_timeout (Linux on microvm sometimes hangs calibrating the
    TSC) is stopped and tried again, at most `retries` times."""
    hung = 0
    while True:
        with Guest(cfg, tcg, marks=tuple(marks) + ((boot_mark,) if boot_mark else ())) as g:
            if boot_mark is not None and not g.wait_mark(boot_mark, boot_timeout):
                r = g.finish(0)
                if r.outcome.kind == "timeout" and hung < retries:
                    hung += 1
                    continue
                raise RuntimeError(f"{cfg.app} did not start ({r.outcome.describe()}, {hung} retries); console:\n"
                                   f"{r.console[-1500:]}")
            return g.finish(timeout), hung


if __name__ == "__main__":
    build(quiet=False)
