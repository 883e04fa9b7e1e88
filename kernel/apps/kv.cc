// kv UDP_SERVER_USAGE (apps/udp_server.hh): a key-value server speaking
// memcached's text protocol over UDP: get (one or more keys), set (with
// flags, exptime, noreply), delete (noreply, the legacy "0"), answered like
// memcached 1.6 answers them. Everything else is "ERROR". One socket per
// thread on one port (apps/udp_server.hh), one store shared by all threads
// (apps/kv_store.hh).
//
// UDP framing (memcached protocol.txt): each datagram starts with an 8-byte
// header: request id, sequence number, datagrams in the message, reserved.
// A request is one datagram (seq 0 of 1; others are dropped, as memcached
// does). The reply to a request is one message: its text cut into
// datagrams of at most 1400 bytes with the header, numbered 0..total-1 (the
// way memcached 1.4 and 1.5 send it; 1.6 sends one message per response
// object: the same text, cut differently).
//
// Where memcached differs: a set whose data is not all in the datagram gets
// "CLIENT_ERROR bad data chunk" here (memcached waits for the rest, which a
// UDP request cannot bring); no eviction (a full heap answers
// "SERVER_ERROR out of memory storing object"); Unix-time exptimes never
// expire (no wall clock yet).
#include "apps/kv_store.hh"
#include "apps/udp_server.hh"
#include "core/app.hh"
#include "core/console.hh"
#include "core/heap.hh"
#include "core/percpu.hh"
#include "lib/printf.hh"
#include "lib/string.hh"

namespace {

constexpr size_t header_size = 8;
constexpr size_t datagram_max = 1400;  // memcached's UDP_MAX_PAYLOAD_SIZE, header included
constexpr size_t reply_max = 64 * 1024;
constexpr unsigned log2_buckets = 16;

kv::store the_store;

// One worker's reply under construction.
struct reply {
    char* buf;
    size_t len = 0;
    bool overflow = false;

    void add(const char* s, size_t n)
    {
        if (overflow || len + n > reply_max) {
            overflow = true;
            return;
        }
        memcpy(buf + len, s, n);
        len += n;
    }
    void add(const char* s) { add(s, strlen(s)); }
};

struct worker_state {
    reply out;
    char frame[datagram_max];
};

struct token {
    const char* s;
    size_t n;
    bool is(const char* w) const { return n == strlen(w) && !memcmp(s, w, n); }
};

constexpr unsigned max_tokens = 24;  // memcached's MAX_TOKENS; a get's keys beyond it are read on

// Splits [s, e) on spaces (runs of spaces count as one), up to max tokens.
// Returns the count; *rest is where tokenising stopped (e when all was read).
unsigned tokenize(const char* s, const char* e, token* t, unsigned max, const char** rest)
{
    unsigned n = 0;
    while (s < e && n < max) {
        while (s < e && *s == ' ') {
            s++;
        }
        if (s == e) {
            break;
        }
        const char* b = s;
        while (s < e && *s != ' ') {
            s++;
        }
        t[n++] = {b, size_t(s - b)};
    }
    while (s < e && *s == ' ') {
        s++;
    }
    *rest = s;
    return n;
}

// memcached's safe_strtoul/safe_strtol: decimal digits only (an optional
// '-' for signed), within range.
bool digits(const char* s, size_t n, uint64_t* v)
{
    if (!n || n > 19) {
        return false;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        x = x * 10 + uint64_t(s[i] - '0');
    }
    *v = x;
    return true;
}

bool to_u32(const token& t, uint32_t* v)
{
    uint64_t x;
    if (!digits(t.s, t.n, &x) || x > 0xffffffffull) {
        return false;
    }
    *v = uint32_t(x);
    return true;
}

bool to_i64(const token& t, int64_t* v)
{
    bool neg = t.n && t.s[0] == '-';
    uint64_t x;
    if (!digits(t.s + neg, t.n - neg, &x) || x > (uint64_t(1) << 62)) {
        return false;
    }
    *v = neg ? -int64_t(x) : int64_t(x);
    return true;
}

void cmd_get(reply& r, const token* t, unsigned n, const char* rest, const char* eol)
{
    size_t mark = r.len;
    char line[320];
    auto one = [&](const token& k) {
        if (k.n > kv::key_max) {
            return false;
        }
        the_store.get(k.s, k.n, [&](uint32_t flags, const char* v, size_t len) {
            int m = snprintf(line, sizeof line, "VALUE %.*s %u %lu\r\n", int(k.n), k.s, flags, len);
            r.add(line, size_t(m));
            r.add(v, len);
            r.add("\r\n", 2);
        });
        return true;
    };
    for (unsigned i = 1; i < n; i++) {
        if (!one(t[i])) {
            r.len = mark;
            r.add("CLIENT_ERROR bad command line format\r\n");
            return;
        }
    }
    // Keys beyond the first max_tokens: read on, in batches.
    while (rest < eol) {
        token more[max_tokens];
        unsigned m = tokenize(rest, eol, more, max_tokens, &rest);
        for (unsigned i = 0; i < m; i++) {
            if (!one(more[i])) {
                r.len = mark;
                r.add("CLIENT_ERROR bad command line format\r\n");
                return;
            }
        }
    }
    r.add("END\r\n");
    if (r.overflow) {
        r.overflow = false;
        r.len = mark;
        r.add("SERVER_ERROR out of memory writing get response\r\n");
    }
}

// Returns where the next command starts (after the data block when it was consumed).
const char* cmd_set(reply& r, const token* t, unsigned n, const char* next, const char* end)
{
    bool noreply = n == 6 && t[5].is("noreply");
    uint32_t flags;
    int64_t exptime, bytes;
    if (t[1].n > kv::key_max || !to_u32(t[2], &flags) || !to_i64(t[3], &exptime) || !to_i64(t[4], &bytes) ||
        bytes < 0) {
        // NOTE: the data block is not consumed: memcached reads it as the next command too.
        if (!noreply) {
            r.add("CLIENT_ERROR bad command line format\r\n");
        }
        return next;
    }
    size_t need = size_t(bytes) + 2;
    if (size_t(end - next) < need) {
        if (!noreply) {
            r.add("CLIENT_ERROR bad data chunk\r\n");
        }
        return end;
    }
    const char* data = next;
    next += need;
    if (data[bytes] != '\r' || data[bytes + 1] != '\n') {
        if (!noreply) {
            r.add("CLIENT_ERROR bad data chunk\r\n");
        }
        return next;
    }
    bool ok = the_store.set(t[1].s, t[1].n, flags, exptime, data, size_t(bytes));
    if (!noreply) {
        r.add(ok ? "STORED\r\n" : "SERVER_ERROR out of memory storing object\r\n");
    }
    return next;
}

void cmd_delete(reply& r, const token* t, unsigned n)
{
    bool noreply = n > 2 && t[n - 1].is("noreply");
    if (n > 2) {
        bool hold_is_zero = t[2].is("0");
        bool valid = (n == 3 && (hold_is_zero || noreply)) || (n == 4 && hold_is_zero && noreply);
        if (!valid) {
            r.add("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
            return;
        }
    }
    if (t[1].n > kv::key_max) {
        if (!noreply) {
            r.add("CLIENT_ERROR bad command line format\r\n");
        }
        return;
    }
    bool found = the_store.remove(t[1].s, t[1].n);
    if (!noreply) {
        r.add(found ? "DELETED\r\n" : "NOT_FOUND\r\n");
    }
}

// All commands of one request datagram, answers appended to r.
void process(reply& r, const char* p, const char* end)
{
    while (p < end) {
        const char* nl = p;
        while (nl < end && *nl != '\n') {
            nl++;
        }
        if (nl == end) {
            return;  // a line without its end: memcached would wait for the rest; a datagram has no rest
        }
        const char* eol = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        const char* next = nl + 1;
        token t[max_tokens];
        const char* rest;
        unsigned n = tokenize(p, eol, t, max_tokens, &rest);
        if (n >= 2 && t[0].is("get")) {
            cmd_get(r, t, n, rest, eol);
        } else if ((n == 5 || n == 6) && t[0].is("set") && rest == eol) {
            next = cmd_set(r, t, n, next, end);
        } else if (n >= 2 && n <= 4 && t[0].is("delete") && rest == eol) {
            cmd_delete(r, t, n);
        } else {
            r.add("ERROR\r\n");
        }
        p = next;
    }
}

void* make_state(unsigned)
{
    auto* w = static_cast<worker_state*>(malloc(sizeof(worker_state)));
    char* buf = static_cast<char*>(malloc(reply_max));
    if (!w || !buf) {
        free(w);
        free(buf);
        return nullptr;
    }
    w->out.buf = buf;
    return w;
}

void put16(char* p, unsigned v)
{
    p[0] = char(v >> 8);
    p[1] = char(v);
}

bool handle(void* state, net::udp_socket* sock, const net::udp_peer& from, const char* req, size_t len)
{
    auto* w = static_cast<worker_state*>(state);
    if (len < header_size) {
        return false;
    }
    auto u16 = [req](unsigned off) { return unsigned(uint8_t(req[off])) << 8 | uint8_t(req[off + 1]); };
    unsigned id = u16(0), seq = u16(2), total = u16(4);
    if (seq != 0 || total != 1) {
        return false;  // multi-datagram requests are not supported (memcached drops them too)
    }
    reply& r = w->out;
    r.len = 0;
    r.overflow = false;
    process(r, req + header_size, req + len);
    if (!r.len) {
        return true;  // noreply
    }
    const size_t chunk = datagram_max - header_size;
    unsigned n = unsigned((r.len + chunk - 1) / chunk);
    if (n > 0xffff) {
        return true;
    }
    for (unsigned i = 0; i < n; i++) {
        size_t off = i * chunk;
        size_t k = r.len - off < chunk ? r.len - off : chunk;
        put16(w->frame, id);
        put16(w->frame + 2, i);
        put16(w->frame + 4, n);
        put16(w->frame + 6, 0);
        memcpy(w->frame + header_size, r.buf + off, k);
        net::udp_sendto(sock, w->frame, header_size + k, from);
    }
    return true;
}

int kv_main(int argc, char** argv)
{
    udp_server::options o;
    o.name = "kv";
    o.threads = online_cpus();
    if (!udp_server::parse(argc, argv, &o)) {
        return 2;
    }
    if (!the_store.init(log2_buckets)) {
        kprintf("kv: no memory for the table\n");
        return 1;
    }
    int rc = udp_server::run(o, make_state, handle);
    kprintf("kv: %lu items at the end\n", the_store.items());
    return rc;
}

}  // namespace

REGISTER_APP(kv_app, "kv",
             UDP_SERVER_USAGE "  memcached text protocol over UDP",
             kv_main);
