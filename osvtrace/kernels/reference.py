"""osvtrace's own kernel (kernel/ in this repository): the fully instrumented reference.

One control block (layout in catalog/layout.py) leads to every CPU's ring, the thread names
and the enabled-tracepoint bitmap; QEMU boots the ELF directly through its PVH note.
"""

from osvtrace.kernels.base import Kernel

KERNEL = Kernel(
    name="osvtrace",
    title="osvtrace reference kernel",
    elf_marker="osvtrace_control",
    trace_buffers="osvtrace_control",
    boot="elf",
    # core/main.cc's osvtrace_app_exit is hit first when the app returns, before the stream
    # drains; every other deliberate end goes through arch/x64/debug_exit.cc.
    exit_breakpoints={"osvtrace_app_exit": "app-exit", "debug_exit::exit_status": "app-exit",
                      "debug_exit::exit_panic": "panic"},
    optional_breakpoints=frozenset({"osvtrace_app_exit"}),
    trace_option="trace={}",
    backtrace_depth=16,  # the kernel's bounded frame-pointer walk (osvtrace.catalog.layout.STACK_MAX_FRAMES)
)
