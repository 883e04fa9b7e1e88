"""An OSv disk image for an app module of tests/support/osv_apps/ (memcached: Debian's own
binary and its libraries), made from the shared OSv build without rebuilding its kernel.

OSv's scripts/build makes usr.img in two parts: the kernel (build/release/loader.img) and a
read-only root file system (rofs) built from usr.manifest, which is OSv's skeleton manifest
(usr_rofs.manifest.skel) followed by each module's manifest. Here the same steps run with
OSv's own tools from the shared tree, as scripts/build's fs=rofs branch runs them
(gen-rofs-img.py, imgedit.py setpartition and setargs, qemu-img), but the module is ours and
everything is written to a directory of its own: the shared build (the image every other
OSv test boots) is only read. A second kernel build (~200-400 s on 2 cores) is not needed.

The result is cached per module and kernel (a key of the manifest, the module's default
command line and loader.img), so the first test pays a few seconds and later ones nothing.
The same module dropped into OSv's modules/ builds with `scripts/build fs=rofs image=NAME`.

    python -m tests.support.osv_app_image memcached      # prints the image's path
"""

from __future__ import annotations

import fcntl
import hashlib
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

APPS = Path(__file__).resolve().parent / "osv_apps"
KERNEL_ALIGN = 2 << 20  # scripts/build: the rofs partition starts at loader.img's size rounded up to 2 MiB
FS_SIZE = 512 << 20  # scripts/build's default fs_size_mb=512 (the disk's size; the qcow2 stays sparse)
PY = "/usr/bin/python3"  # OSv's scripts want Debian's python3 (../shared/osv/README.md)


class AppImageError(RuntimeError):
    """The image could not be made: the message says which step, with its output."""


def apps() -> list[str]:
    """The app modules there are (directories of osv_apps/ with a Makefile)."""
    return sorted(p.name for p in APPS.iterdir() if (p / "Makefile").is_file())


def default_cmdline(module: Path, tree: Path) -> str:
    """The module's own command line, from its module.py run with OSv's module API (what
    scripts/module.py writes to build/release/cmdline)."""
    sys.path.insert(0, str(tree / "scripts"))
    try:
        return runpy.run_path(str(module / "module.py"))["default"].get_launcher_args()
    finally:
        sys.path.remove(str(tree / "scripts"))


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise AppImageError(f"{what} failed ({' '.join(cmd)}): {(out.stdout + out.stderr).strip()[-2000:]}")


def _manifest(tree: Path, module_manifest: str, module_dir: Path) -> str:
    """OSv's rofs skeleton with its host paths made absolute (they are relative to the build
    directory, where gen-rofs-img.py normally runs), then the module's manifest."""
    rel = tree / "build" / "release"
    lines = []
    for line in (tree / "usr_rofs.manifest.skel").read_text().splitlines():
        guest, sep, host = line.partition(": ")
        if sep and not host.startswith(("/", "%(", "->")):
            host = str(rel / host)
        lines.append(guest + sep + host)
    lines += module_manifest.replace("${MODULE_DIR}", str(module_dir)).splitlines()
    return "\n".join(lines) + "\n"


def _libgcc_s_dir() -> str:
    path = subprocess.run(["gcc", "-print-file-name=libgcc_s.so.1"], capture_output=True, text=True).stdout.strip()
    return str(Path(path).resolve().parent)


def app_image(name: str, tree: Path, cache: Path) -> Path:
    """usr.img (qcow2) of OSv's kernel from `tree` and module `name`'s files, in
    cache/NAME/ with loader.elf linked beside it (where `record --image` looks for it)."""
    src = APPS / name
    if not (src / "Makefile").is_file():
        raise AppImageError(f"no OSv app module {name!r} (there are: {', '.join(apps())})")
    rel = tree / "build" / "release"
    loader = rel / "loader.img"
    out = cache / name
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # The module is built in a copy: `make module` writes usr.manifest into its directory.
        mod = out / "module"
        shutil.rmtree(mod, ignore_errors=True)
        shutil.copytree(src, mod)
        _run(["make", "-s", "module"], mod, f"make module ({name})")
        manifest = _manifest(tree, (mod / "usr.manifest").read_text(), mod)
        cmdline = f"--rootfs=rofs {default_cmdline(mod, tree)}"
        h = hashlib.sha256(manifest.encode() + cmdline.encode())
        for host in [loader] + [Path(ln.partition(": ")[2]) for ln in manifest.splitlines() if ": /" in ln]:
            st = host.stat() if host.is_file() else None  # a changed library or kernel makes a new image
            h.update(f"{host}:{st.st_size}:{st.st_mtime_ns}".encode() if st else str(host).encode())
        key = h.hexdigest()[:16]
        img = out / "usr.img"
        if img.is_file() and (out / "key").is_file() and (out / "key").read_text() == key:
            return img
        (out / "usr.manifest").write_text(manifest)
        for f in ("rofs.img", "bare.raw", "usr.img", "key"):
            (out / f).unlink(missing_ok=True)
        scripts = tree / "scripts"
        _run([PY, str(scripts / "gen-rofs-img.py"), "-o", "rofs.img", "-m", "usr.manifest",
              "-D", f"libgcc_s_dir={_libgcc_s_dir()}"], out, "gen-rofs-img.py")
        rofs_size = (out / "rofs.img").stat().st_size
        offset = (loader.stat().st_size + KERNEL_ALIGN - 1) & ~(KERNEL_ALIGN - 1)
        shutil.copyfile(loader, out / "bare.raw")
        _run([PY, str(scripts / "imgedit.py"), "setpartition", "-f raw bare.raw", "2", str(offset), str(rofs_size)],
             out, "imgedit.py setpartition")
        _run(["qemu-img", "resize", "-f", "raw", "bare.raw", f"{FS_SIZE}"], out, "qemu-img resize")
        with open(out / "bare.raw", "r+b") as disk, open(out / "rofs.img", "rb") as rofs:
            disk.seek(offset)
            shutil.copyfileobj(rofs, disk)
        _run([PY, str(scripts / "imgedit.py"), "setargs", "-f raw bare.raw", cmdline], out, "imgedit.py setargs")
        _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "bare.raw", "usr.img"], out, "qemu-img convert")
        (out / "bare.raw").unlink()
        (out / "rofs.img").unlink()
        elf = out / "loader.elf"
        elf.unlink(missing_ok=True)
        elf.symlink_to(rel / "loader.elf")
        (out / "key").write_text(key)
        return img


def cache_dir() -> Path:
    """Beside the OSv build: $OSV_BUILD_DIR-apps, else ~/.cache/osv-build-apps."""
    from osvtrace.vm import osv_image

    build = osv_image.default_tree().parent
    return build.parent / (build.name + "-apps")


if __name__ == "__main__":
    from osvtrace.vm import osv_image

    if len(sys.argv) != 2:
        sys.exit(f"usage: python -m tests.support.osv_app_image APP   (APP: {', '.join(apps())})")
    tree = osv_image.default_tree()
    if not (tree / "build" / "release" / "loader.img").is_file():
        sys.exit(f"no OSv build at {tree}: build it first (../shared/osv/build.sh)")
    try:
        print(app_image(sys.argv[1], tree, cache_dir()))
    except AppImageError as e:
        sys.exit(f"osv_app_image: {e}")
