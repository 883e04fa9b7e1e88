"""QEMU launch, kernel build, the gdb/MI client: running a kernel, nothing about its trace."""
