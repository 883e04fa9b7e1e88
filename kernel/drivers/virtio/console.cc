#include "drivers/virtio/console.hh"

#include "core/console.hh"
#include "core/heap.hh"
#include "core/thread.hh"
#include "drivers/virtio/virtio.hh"
#include "lib/string.hh"

namespace virtio_console {

// The control protocol (virtio 1.x, 5.3.6.2).
struct control_msg {
    uint32_t id;  // port number
    uint16_t event;
    uint16_t value;
};
static_assert(sizeof(control_msg) == 8, "virtio_console_control is 8 bytes");

namespace {

constexpr uint32_t f_multiport = 1u << 1;
enum : uint16_t {
    ev_device_ready = 0,
    ev_device_add = 1,
    ev_device_remove = 2,
    ev_port_ready = 3,
    ev_console_port = 4,
    ev_resize = 5,
    ev_port_open = 6,
    ev_port_name = 7,
};

constexpr unsigned max_ports = 8;  // QEMU: -device virtio-serial-...,max_ports=N (we ask for 4)
constexpr unsigned max_name = 64;
constexpr unsigned n_ctl_rx = 16;
constexpr unsigned ctl_rx_size = 128;  // a message and a port name
constexpr unsigned n_ctl_tx = 32;
constexpr unsigned port_rx_bufs = 4;
constexpr unsigned port_rx_size = 4096;

// Queue numbers with MULTIPORT: port 0 has 0/1, the control queues are 2/3,
// port n >= 1 has 2n+2 (receive) and 2n+3 (transmit).
constexpr unsigned q_ctl_rx = 2, q_ctl_tx = 3;
constexpr unsigned rx_queue(unsigned p) { return p == 0 ? 0 : 2 * p + 2; }
constexpr unsigned tx_queue_index(unsigned p) { return p == 0 ? 1 : 2 * p + 3; }

}  // namespace

struct port {
    unsigned id = 0;
    bool added = false;
    volatile bool host_open = false;
    volatile bool opened = false;  // we sent PORT_OPEN: find() returns it
    int spec = -1;
    char name[max_name] = {};
    virtio::virtqueue rx;
    virtio::virtqueue tx;
    event tx_done;
    char (*rx_bufs)[port_rx_size] = nullptr;
};

namespace {

struct device {
    virtio::transport* t = nullptr;
    unsigned nports = 0;
    port ports[max_ports];
    virtio::virtqueue ctl_rx, ctl_tx;
    char ctl_rx_bufs[n_ctl_rx][ctl_rx_size];
    control_msg ctl_tx_msgs[n_ctl_tx];
    unsigned ctl_tx_next = 0;
    event work;  // the service thread's: interrupts, new ports
    const port_spec* specs = nullptr;
    unsigned nspecs = 0;
    port* by_spec[max_ports] = {};
};

device* dev;

void on_interrupt(void* arg)
{
    auto* d = static_cast<device*>(arg);
    d->t->ack_interrupt();
    d->work.signal();
    for (unsigned i = 0; i < d->nports; i++) {
        if (d->ports[i].opened) {
            d->ports[i].tx_done.signal();
        }
    }
}

void reclaim_ctl_tx(device* d)
{
    void* tok;
    uint32_t len;
    while (d->ctl_tx.get_used(&tok, &len)) {
    }
}

void send_ctl(device* d, uint32_t id, uint16_t ev, uint16_t value)
{
    reclaim_ctl_tx(d);
    // QEMU consumes control messages as soon as they are kicked, so slots
    // come back at once; with a slow device, wait for one.
    while (!d->ctl_tx.free_descriptors()) {
        threads::sleep_ns(100000);
        reclaim_ctl_tx(d);
    }
    control_msg* m = &d->ctl_tx_msgs[d->ctl_tx_next++ % n_ctl_tx];
    *m = {id, ev, value};
    virtio::piece p{m, sizeof *m};
    d->ctl_tx.add(&p, 1, nullptr, 0, m);
    d->ctl_tx.kick();
}

void post_rx(virtio::virtqueue* q, void* buf, uint32_t size)
{
    virtio::piece p{buf, size};
    q->add(nullptr, 0, &p, 1, buf);
}

// The host named a port: open it if it is one we serve.
void port_named(device* d, port* p)
{
    for (unsigned s = 0; s < d->nspecs; s++) {
        if (strcmp(d->specs[s].name, p->name) || d->by_spec[s]) {
            continue;
        }
        p->spec = int(s);
        if (d->specs[s].receive) {
            p->rx_bufs = static_cast<char(*)[port_rx_size]>(malloc(port_rx_bufs * port_rx_size));
            if (!p->rx_bufs) {
                kprintf("virtio-console: no memory for port %s's buffers\n", p->name);
                return;
            }
            for (unsigned i = 0; i < port_rx_bufs; i++) {
                post_rx(&p->rx, p->rx_bufs[i], port_rx_size);
            }
            p->rx.kick();
        }
        p->tx.disable_interrupts();  // its owner enables them when it waits
        send_ctl(d, p->id, ev_port_open, 1);
        p->opened = true;
        __atomic_store_n(&d->by_spec[s], p, __ATOMIC_RELEASE);
        return;
    }
}

void handle_ctl(device* d, const char* buf, uint32_t len)
{
    if (len < sizeof(control_msg)) {
        return;
    }
    control_msg m;
    memcpy(&m, buf, sizeof m);
    if (m.id >= d->nports) {
        if (m.event == ev_device_add) {
            kprintf("virtio-console: host added port %u beyond the %u this driver set up\n", m.id, d->nports);
            send_ctl(d, m.id, ev_port_ready, 0);
        }
        return;
    }
    port* p = &d->ports[m.id];
    switch (m.event) {
    case ev_device_add:
        p->added = true;
        send_ctl(d, m.id, ev_port_ready, 1);
        break;
    case ev_device_remove:
        p->added = false;
        p->host_open = false;
        break;
    case ev_port_name: {
        uint32_t n = len - sizeof m < max_name - 1 ? len - sizeof m : max_name - 1;
        memcpy(p->name, buf + sizeof m, n);
        p->name[n] = 0;
        port_named(d, p);
        break;
    }
    case ev_port_open:
        p->host_open = m.value != 0;
        break;
    case ev_console_port:
    case ev_resize:
    default:
        break;
    }
}

void service(device* d)
{
    void* tok;
    uint32_t len;
    while (d->ctl_rx.get_used(&tok, &len)) {
        handle_ctl(d, static_cast<const char*>(tok), len);
        post_rx(&d->ctl_rx, tok, ctl_rx_size);
        d->ctl_rx.kick();
    }
    for (unsigned i = 0; i < d->nports; i++) {
        port* p = &d->ports[i];
        if (!p->rx_bufs) {
            continue;
        }
        bool any = false;
        while (p->rx.get_used(&tok, &len)) {
            const port_spec& s = d->specs[p->spec];
            s.receive(static_cast<const char*>(tok), len, s.arg);
            post_rx(&p->rx, tok, port_rx_size);
            any = true;
        }
        if (any) {
            p->rx.kick();
        }
    }
    reclaim_ctl_tx(d);
}

void service_thread(void* arg)
{
    auto* d = static_cast<device*>(arg);
    send_ctl(d, 0, ev_device_ready, 1);
    for (;;) {
        service(d);
        d->work.wait();
    }
}

bool setup(device* d)
{
    virtio::transport* t = d->t;
    uint32_t features = t->host_features();
    if (!(features & f_multiport)) {
        kprintf("virtio-console: %s does not offer MULTIPORT (named ports need it)\n", t->name());
        return false;
    }
    t->set_guest_features(f_multiport);
    if (!t->setup_interrupt(on_interrupt, d)) {
        kprintf("virtio-console: %s: no interrupt route (MSI-X or I/O APIC)\n", t->name());
        return false;
    }
    uint32_t n = t->config32(4);  // max_nr_ports
    d->nports = n < max_ports ? n : max_ports;
    auto init_queue = [t](virtio::virtqueue* q, unsigned index) {
        uint16_t size = t->queue_max(index);
        if (!q->init(t, index, size)) {
            kprintf("virtio-console: %s: cannot set up queue %u (size %u)\n", t->name(), index, size);
            return false;
        }
        return true;
    };
    if (!init_queue(&d->ctl_rx, q_ctl_rx) || !init_queue(&d->ctl_tx, q_ctl_tx)) {
        return false;
    }
    for (unsigned i = 0; i < d->nports; i++) {
        port* p = &d->ports[i];
        p->id = i;
        if (!init_queue(&p->rx, rx_queue(i)) || !init_queue(&p->tx, tx_queue_index(i))) {
            return false;
        }
    }
    for (unsigned i = 0; i < n_ctl_rx; i++) {
        post_rx(&d->ctl_rx, d->ctl_rx_bufs[i], ctl_rx_size);
    }
    d->ctl_tx.disable_interrupts();  // reclaimed by polling
    t->set_status(virtio::status_acknowledge | virtio::status_driver | virtio::status_driver_ok);
    d->ctl_rx.kick();
    return true;
}

}  // namespace

bool start(const port_spec* specs, unsigned nspecs)
{
    if (dev) {
        return true;
    }
    virtio::transport* t = virtio::probe(virtio::type_console, 0);
    if (!t) {
        return false;
    }
    auto* d = new device;
    d->t = t;
    d->specs = specs;
    d->nspecs = nspecs < max_ports ? nspecs : max_ports;
    if (!setup(d)) {
        t->set_status(virtio::status_failed);
        return false;
    }
    dev = d;
    if (!threads::create("virtio-console", service_thread, d)) {
        kprintf("virtio-console: cannot create the service thread\n");
        return false;
    }
    return true;
}

port* find(unsigned spec_index)
{
    if (!dev || spec_index >= dev->nspecs) {
        return nullptr;
    }
    return __atomic_load_n(&dev->by_spec[spec_index], __ATOMIC_ACQUIRE);
}

bool host_connected(const port* p) { return p->host_open; }
virtio::virtqueue* tx_queue(port* p) { return &p->tx; }
event* tx_event(port* p) { return &p->tx_done; }

}  // namespace virtio_console
