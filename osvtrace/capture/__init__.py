"""Getting ring bytes out of a VM: virtio stream, shared RAM, gdb snapshot, crash recovery; the recorder."""
