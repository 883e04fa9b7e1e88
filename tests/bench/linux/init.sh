#!/bin/sh
# PID 1 of the Linux guest. It runs the app named on the kernel command line the way our
# kernel does (`app=NAME ARGS...`, the words osvtrace.vm.qemu.kernel_cmdline writes), then ends
# the VM through the isa-debug-exit port with the app's status, so the host reads both
# guests' results with the same code.
echo "linux: init"  # the host's sign that the boot did not hang
mount -t proc proc /proc
set -- $(cat /proc/cmdline)
app=
while [ $# -gt 0 ]; do
    case "$1" in app=*) app=${1#app=}; shift; break ;; esac
    shift
done
args=
for w in "$@"; do
    # QEMU appends virtio_mmio.device= words on microvm; `--` is kernel_cmdline's separator
    case "$w" in virtio_mmio.*|--) ;; *) args="$args $w" ;; esac
done
if [ "$app" = udp-echo ]; then
    # The NIC: the Debian kernel has virtio and virtio-net as modules (no modules.dep
    # in the initramfs, so insmod them in dependency order; a module for the other
    # machine's transport fails to find its device and is harmless).
    for m in virtio_ring virtio virtio_mmio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover \
             net_failover virtio_net; do
        insmod /lib/modules/$m.ko 2>/dev/null
    done
    ip link set lo up
    ip link set eth0 up || echo "linux: no eth0"
    # QEMU's user network: the guest is 10.0.2.15, forwarded datagrams come from 10.0.2.2
    ip addr add 10.0.2.15/24 dev eth0
fi
if [ -x "/bin/$app" ]; then
    /bin/$app $args
    status=$?
else
    echo "linux: no app $app"
    status=2
fi
echo "linux: app exited with status $status"
/bin/qexit $status
