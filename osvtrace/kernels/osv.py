"""Real OSv (cloudius-systems/osv): the unikernel osvtrace's users run.

Its trace buffers are a per-CPU variable (`percpu_trace_buffer`, core/trace.cc), each a ring
that overwrites silently; QEMU boots a disk image whose own loader starts the kernel, so the
command line lives in the image (scripts/imgedit.py setargs). `--trace=GLOB` takes fnmatch
patterns, one per option; `--trace-backtrace` stores 10 return addresses in every record.
"""

from osvtrace.kernels.base import Kernel

KERNEL = Kernel(
    name="osv",
    title="OSv kernel",
    elf_marker="osv_version",
    trace_buffers="percpu_trace_buffer",
    boot="image",
    # osv::poweroff is where every orderly end goes; by then the app's object is unloaded, so
    # snapshots that want the app's symbols stop earlier (at elf::program::remove_object).
    exit_breakpoints={"osv::poweroff": "app-exit"},
    trace_option="--trace={}",
    trace_option_per_glob=True,
    backtrace_option="--trace-backtrace",
)
