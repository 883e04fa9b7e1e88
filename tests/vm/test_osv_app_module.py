"""The memcached OSv module's manifest, as OSv's build reads it (no OSv, no VM: `make module`
on this machine's memcached and ldd)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.osv_app_image import APPS, apps

# what OSv's kernel supplies itself (core/elf.cc, program::program's supplied_modules) or its rofs
# skeleton carries (libgcc_s), and the vDSO and dynamic linker no file stands for
SUPPLIED_BY_OSV = re.compile(r"^(linux-vdso|ld-linux-x86-64|libc|libm|libpthread|libdl|librt|libresolv|libcrypt|"
                             r"libstdc\+\+|libgcc_s|libaio|libutil)\.so")


def test_memcached_module_ships_the_binary_and_every_library_osv_does_not_supply(tmp_path):
    if shutil.which("memcached") is None:
        pytest.fail("memcached not installed (make deps installs it: apt-get install memcached)", pytrace=False)
    assert "memcached" in apps()
    mod = tmp_path / "memcached"
    shutil.copytree(APPS / "memcached", mod)
    subprocess.run(["make", "-s", "module"], cwd=mod, check=True, capture_output=True, timeout=60)
    entries = dict(line.split(": ", 1) for line in (mod / "usr.manifest").read_text().splitlines())
    assert entries.pop("/usr/bin/memcached") == "/usr/bin/memcached"
    ldd = subprocess.run(["ldd", "/usr/bin/memcached"], capture_output=True, text=True, check=True).stdout
    needed = {w[0] for w in (ln.split() for ln in ldd.splitlines()) if len(w) > 2 and w[1] == "=>"}
    wanted = {f"/usr/lib/{so}" for so in needed if not SUPPLIED_BY_OSV.match(so)}
    assert set(entries) == wanted and wanted, (entries, needed)  # libevent, libssl ... but no libc
    for guest, host in entries.items():  # the file itself, not a symlink (rofs would store the link)
        path = Path(host)
        assert path.is_file() and not path.is_symlink() and path.name.startswith(guest.rsplit("/", 1)[1]), host
