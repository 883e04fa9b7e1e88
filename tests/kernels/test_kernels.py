"""The per-kernel facts: every kernel is reachable by name and by its ELF, and its command-line
words are what that kernel parses."""

from __future__ import annotations

import pytest
from elftools.elf.elffile import ELFFile

from osvtrace import kernels
from osvtrace.errors import UsageError
from osvtrace.vm.qemu import VmConfig, kernel_cmdline


def test_each_kernel_is_found_by_its_name_and_by_its_elf_marker():
    for name in kernels.names():
        k = kernels.get(name)
        assert k.name == name and kernels.of_elf({k.elf_marker, "main"}) is k
    assert kernels.of_elf({"main", "printf"}) is None


def test_an_unknown_kernel_name_is_one_line_naming_the_known_ones():
    with pytest.raises(UsageError, match=r"no kernel 'linux'; kernels: osvtrace, osv"):
        kernels.get("linux")


def test_our_kernel_takes_its_globs_in_one_word_and_osv_one_option_per_glob():
    assert kernels.get("osvtrace").trace_words(["sched_*", "mutex_*"]) == ["trace=sched_*,mutex_*"]
    assert kernels.get("osv").trace_words(["sched*", "mutex*"], backtrace=True) == \
        ["--trace=sched*", "--trace=mutex*", "--trace-backtrace"]
    with pytest.raises(UsageError, match="records no backtraces"):
        kernels.get("osvtrace").trace_words(["a"], backtrace=True)


def test_the_qemu_command_line_enables_tracepoints_the_reference_kernel_way(tmp_path):
    line = kernel_cmdline(VmConfig(kernel=tmp_path / "k.elf", app="hello", trace="sched_*, mutex_*"))
    assert "trace=sched_*,mutex_* " in line and line.endswith("app=hello")


def test_our_built_kernel_is_recognised_as_ours_by_its_symbols(kernel):
    with open(kernel, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        names = {s.name for s in symtab.iter_symbols()}
    k = kernels.of_elf(names)
    assert k is not None and k.name == "osvtrace" and k.trace_buffers in names
    assert all(sym in names for sym in k.exit_breakpoints if sym.isidentifier())


def test_our_kernels_stack_bound_is_the_record_layouts():
    from osvtrace.catalog import layout
    from osvtrace.kernels import reference

    # a stack as deep as this is reported as possibly cut; a shallower one is whole
    assert reference.KERNEL.backtrace_depth == layout.STACK_MAX_FRAMES
