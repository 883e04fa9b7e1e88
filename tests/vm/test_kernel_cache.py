"""The per-user kernel cache of an installed osvtrace (osvtrace.vm.kernel_build.cached_build):
the key, one build per key under concurrency, a dead build redone, and the one-line errors
when the cache cannot be written or the tools are missing. make is replaced by a fake here
(tests/test_install.py builds the real kernel into a real cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from osvtrace import resources
from osvtrace.catalog import codegen
from osvtrace.catalog.schema import default_catalog
from osvtrace.vm import kernel_build


@pytest.fixture
def fake_make(monkeypatch, tmp_path):
    """make replaced by something that writes an ELF after a while; counts its calls."""
    calls = []

    def make(cmd, *, quiet, out):
        calls.append(cmd)
        outdir = Path(next(a[2:] for a in cmd if a.startswith("O=")))
        time.sleep(0.3)
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / "kernel.elf").write_bytes(b"\x7fELF fake")

    monkeypatch.setattr(kernel_build, "_make", make)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return calls


def test_the_key_names_sources_schema_and_compiler(tmp_path):
    src = tmp_path / "kernel"
    shutil.copytree(resources.kernel_sources(), src)
    header = codegen.header(default_catalog())
    key = kernel_build.build_key(src, header)
    assert key == kernel_build.build_key(src, header)
    assert kernel_build.build_key(src, header + "// other schema\n") != key
    (src / "core" / "main.cc").write_text((src / "core" / "main.cc").read_text() + "\n// changed\n")
    changed = kernel_build.build_key(src, header)
    assert changed != key
    # the shipped generated header is not part of the key (the one generated from the schema is)
    (src / "include" / "generated" / "tracepoints.hh").write_text("stale")
    assert kernel_build.build_key(src, header) == changed


def test_concurrent_builds_of_one_key_build_once(fake_make, tmp_path):
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(kernel_build.cached_build(quiet=True)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_make) == 1
    assert len(results) == 3 and len(set(results)) == 1 and results[0].read_bytes() == b"\x7fELF fake"
    key_dir = results[0].parent
    assert key_dir.parent == tmp_path / "cache" / "osvtrace" / "kernel"
    # the sources stay next to the ELF (its debug info names them), with the generated header
    assert (key_dir / "src" / "Makefile").is_file()
    assert (key_dir / "src" / "include" / "generated" / "tracepoints.hh").read_text() == \
        codegen.header(default_catalog())
    assert not (key_dir / "obj").exists()
    # the stable link (resources.default_kernel) follows the latest build
    link = tmp_path / "cache" / "osvtrace" / "kernel" / "kernel.elf"
    assert link.resolve() == results[0].resolve()
    assert kernel_build.cached_build(quiet=True) == results[0] and len(fake_make) == 1


def test_a_build_that_died_is_done_again(fake_make, tmp_path):
    elf = kernel_build.cached_kernel()
    (elf.parent / "src").mkdir(parents=True)
    (elf.parent / "src" / "half-copied").write_text("")
    assert kernel_build.cached_build(quiet=True) == elf
    assert elf.is_file() and not (elf.parent / "src" / "half-copied").exists()
    assert len(fake_make) == 1


@pytest.mark.parametrize("case", ["file", "sysfs"])
def test_an_unwritable_cache_is_one_line(case, tmp_path, monkeypatch):
    if case == "file":  # XDG_CACHE_HOME names a file: nothing can be created under it
        (tmp_path / "f").write_text("")
        cache, blamed = tmp_path / "f", tmp_path / "f"
    else:  # a file system that refuses new directories, even to root
        cache, blamed = Path("/sys/osvtrace-test-cache"), Path("/sys")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    with pytest.raises(kernel_build.BuildError) as e:
        kernel_build.cached_build(quiet=True)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"cannot build the kernel into the cache: {blamed} is not writable (")
    assert msg.endswith("set XDG_CACHE_HOME to a writable directory")


def test_missing_tools_name_the_apt_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(kernel_build.BuildError) as e:
        kernel_build.cached_build(quiet=True)
    assert str(e.value) == ("cannot build the kernel: g++, make, nm not found: install with "
                            "apt-get install -y binutils g++ make")
