// The virtio console's ports org.osvtrace.trace and org.osvtrace.ctl as the
// trace stream's port (core/trace_port.hh): the drain streams through them
// without core naming this driver.
#include "core/event.hh"
#include "core/trace_port.hh"
#include "drivers/virtio/console.hh"
#include "drivers/virtio/virtqueue.hh"
#include "trace/stream.hh"

namespace {

namespace ts = trace::stream;

// Kept by pointer by the driver; the control port's receiver is set by start().
virtio_console::port_spec specs[] = {
    {ts::port_name, nullptr, nullptr},
    {ts::ctl_port_name, nullptr, nullptr},
};

virtio_console::port* trace_port_ = nullptr;  // once connected() has seen it open

bool start(void (*ctl)(const char*, size_t, void*))
{
    specs[1].receive = ctl;
    return virtio_console::start(specs, 2);
}

bool connected()
{
    virtio_console::port* p = virtio_console::find(0);
    if (!p || !virtio_console::host_connected(p)) {
        return false;
    }
    trace_port_ = p;
    return true;
}

virtio::virtqueue* txq() { return virtio_console::tx_queue(trace_port_); }

unsigned size() { return txq()->size(); }
unsigned free_descriptors() { return txq()->free_descriptors(); }

bool add(const trace_port::piece* out, unsigned n, void* token)
{
    virtio::piece p[4];
    if (n > 4) {
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        p[i] = {out[i].addr, out[i].len};
    }
    return txq()->add(p, n, nullptr, 0, token);
}

void kick() { txq()->kick(); }

bool get_used(void** token)
{
    uint32_t len;
    return txq()->get_used(token, &len);
}

void wait_used()
{
    // Interrupts from the queue only while we sleep on them; re-check after
    // enabling them, or a buffer returned just before would wake nobody.
    virtio::virtqueue* q = txq();
    event* done = virtio_console::tx_event(trace_port_);
    while (!q->enable_interrupts()) {
        done->wait();
        if (q->has_used()) {
            break;
        }
    }
    q->disable_interrupts();
}

const trace_port::ops virtio_console_port = {
    "virtio console", start, connected, size, free_descriptors, add, kick, get_used, wait_used,
};

}  // namespace

REGISTER_TRACE_PORT(virtio_console_port);
