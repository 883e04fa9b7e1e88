"""Kernels other than osvtrace's own, one module each, registered with
osvtrace.gdb.commands.add_kernel: the loaded ELF's symbols choose one (or none, which
means osvtrace's kernel and the command modules beside this package).

  osv   real OSv (cloudius-systems/osv): threads, stacks with the app's frames, run
        queues, lockfree::mutex, per-CPU trace buffers, memory; `osv syms`
"""
