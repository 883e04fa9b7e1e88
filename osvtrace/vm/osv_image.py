"""Booting real OSv: find its build, give it a command line, and the QEMU command for it.

OSv boots from a disk image whose own loader reads the kernel command line at byte 512 of
the disk (scripts/imgedit.py setargs writes it there through qemu-nbd). Here the image is
never modified: a qcow2 overlay backed by it gets the command line (qemu-io, ~70 ms, no
nbd server), so one build serves any number of runs, even at once. The QEMU line is
OSv's scripts/run.py / ../shared/osv/run.sh's: virtio-blk disk, user-mode net, virtio-rng.
"""

from __future__ import annotations

import mmap
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from osvtrace import resources
from osvtrace.errors import OsvtraceError
from osvtrace.kernels import osv as osv_kernel
from osvtrace.vm.qemu import hostfwd_rule

ARGS_OFFSET = 512  # scripts/imgedit.py args_offset
MAX_CMDLINE = 4096 - 1  # what the boot loader copies (a few sectors); longer lines are refused here


class OsvMissing(OsvtraceError):
    """No OSv build, or a file that is not one: one line, exit 2."""

    exit_code = 2


@dataclass(frozen=True)
class OsvBuild:
    image: Path  # usr.img (qcow2: loader + rofs with the app)
    elf: Path  # loader.elf with its DWARF (gdb reads OSv's structures from it)
    tree: Path | None  # the OSv source tree, when the build is inside one


def default_tree() -> Path:
    """Where ../shared/osv/build.sh builds OSv ($OSV_BUILD_DIR, else ~/.cache/osv-build)."""
    return resources.osv_build_tree()


def is_osv_elf(path: Path) -> bool:
    """An ELF file defining OSv's marker symbol (kernels/osv.py)."""
    marker = b"\0" + osv_kernel.KERNEL.elf_marker.encode() + b"\0"
    with open(path, "rb") as fh:
        if fh.read(4) != b"\x7fELF":
            return False
        fh.seek(0)
        try:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return mm.find(marker) >= 0
        except ValueError:  # empty
            return False


def find_build(image: Path | None = None, elf: Path | None = None) -> OsvBuild:
    """The image and loader.elf to boot: given, or the cached build's (build/release)."""
    tree = default_tree()
    rel = tree / "build" / "release"
    if image is None:
        image = rel / "usr.img"
        if not image.is_file():
            raise OsvMissing(f"no OSv build at {rel} (usr.img missing): build it with ../shared/osv/build.sh, "
                             f"or give --image and --elf")
    elif not image.is_file():
        raise OsvMissing(f"--image {image}: no such file")
    if elf is None:
        cand = image.parent / "loader.elf"
        elf = cand if cand.is_file() else rel / "loader.elf"
        if not elf.is_file():
            raise OsvMissing(f"no loader.elf beside {image} or in {rel}: give --elf (OSv's loader.elf with its "
                             f"debug info)")
    elif not elf.is_file():
        raise OsvMissing(f"--elf {elf}: no such file")
    if not is_osv_elf(elf):
        raise OsvMissing(f"{elf} is not an OSv kernel ELF (no {osv_kernel.KERNEL.elf_marker} symbol): give "
                         f"OSv's build/release/loader.elf")
    root = elf.resolve().parent
    while root != root.parent and not (root / "scripts" / "loader.py").is_file():
        root = root.parent
    return OsvBuild(image, elf, root if (root / "scripts" / "loader.py").is_file() else None)


def cmdline(app: str, args: tuple[str, ...], globs: list[str], backtrace: bool = False,
            extra: tuple[str, ...] = ()) -> str:
    """OSv's command line: its trace options, --rootfs=rofs (the build's own line has it, and
    a new line replaces the whole of it), then the app and its arguments."""
    words = osv_kernel.KERNEL.trace_words(globs, backtrace) + list(extra) + ["--rootfs=rofs", app, *args]
    line = " ".join(words)
    if len(line) > MAX_CMDLINE:
        raise OsvtraceError(f"the OSv command line is {len(line)} bytes; at most {MAX_CMDLINE}")
    return line


def image_with_cmdline(image: Path, line: str, into: Path) -> Path:
    """A qcow2 overlay of `image` (left untouched) with OSv's command line `line`."""
    into.mkdir(parents=True, exist_ok=True)
    ov = into / "osv-disk.qcow2"
    args = into / "osv-cmdline.bin"
    data = line.encode() + b"\0"
    args.write_bytes(data)
    fmt = "qcow2" if open(image, "rb").read(4) == b"QFI\xfb" else "raw"
    for cmd in (["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.resolve()), "-F", fmt, str(ov)],
                ["qemu-io", "-f", "qcow2", "-c", f"write -s {args} {ARGS_OFFSET} {len(data)}", str(ov)]):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise OsvMissing(f"{cmd[0]} not found: apt-get install qemu-utils") from None
        if out.returncode:
            raise OsvtraceError(f"{cmd[0]} failed on {image}: {(out.stderr or out.stdout).strip()[-300:]}")
    return ov


def qemu_args(disk: Path, *, smp: int, mem_mb: int, accel: str, shm: Path | None = None,
              hostfwd: tuple[str, ...] = ()) -> list[str]:
    """QEMU's arguments for OSv (no gdb, no -S; the program name first). `hostfwd`: host
    ports forwarded to the guest (`record --hostfwd udp:HOSTPORT-:GUESTPORT`), on 127.0.0.1
    unless a rule names an address; the guest is OSv's DHCP address on run.sh's network."""
    netdev = ",".join(["user,id=un0,net=192.168.122.0/24,host=192.168.122.1"]
                      + [f"hostfwd={hostfwd_rule(h)}" for h in hostfwd])
    args = ["qemu-system-x86_64", "-accel", accel, "-m", f"{mem_mb}M", "-smp", str(smp), "-display", "none",
            "-nodefaults", "-no-user-config", "-no-reboot",
            "-device", "virtio-blk-pci,id=blk0,drive=hd0,bootindex=0",
            "-drive", f"file={disk},if=none,id=hd0,cache=unsafe",
            "-netdev", netdev,
            "-device", "virtio-net-pci,netdev=un0", "-device", "virtio-rng-pci", "-serial", "stdio"]
    if shm is not None:
        args += ["-object", f"memory-backend-file,id=ram0,size={mem_mb}M,mem-path={shm},share=on",
                 "-machine", "memory-backend=ram0"]
    return args
