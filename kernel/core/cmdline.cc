#include "core/cmdline.hh"

#include "core/console.hh"
#include "lib/string.hh"

namespace cmdline {
namespace {

char saved[max_len];   // pristine: published for host tools
char tokens[max_len];  // split in place into NUL-terminated words

bool prefix(const char* s, const char* p) { return strncmp(s, p, strlen(p)) == 0; }

bool parse_size(const char* s, uint64_t* out)
{
    size_t n = strlen(s);
    uint64_t mult = 1;
    if (n) {
        switch (s[n - 1]) {
        case 'k': case 'K': mult = 1ull << 10; n--; break;
        case 'm': case 'M': mult = 1ull << 20; n--; break;
        case 'g': case 'G': mult = 1ull << 30; n--; break;
        default: break;
        }
    }
    uint64_t v;
    if (!parse_u64(s, n, &v) || __builtin_mul_overflow(v, mult, &v)) {
        return false;
    }
    *out = v;
    return true;
}

// Splits `tokens` into words: spaces separate, double quotes group. Returns
// the number of words written to words[].
int split(char* s, char** words, int max)
{
    int n = 0;
    char* w = s;  // write position (quotes are removed in place)
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == '\n') {
            s++;
        }
        if (!*s) {
            break;
        }
        if (n == max) {
            return -1;
        }
        words[n++] = w;
        bool quoted = false;
        while (*s && (quoted || (*s != ' ' && *s != '\t' && *s != '\n'))) {
            if (*s == '"') {
                quoted = !quoted;
                s++;
                continue;
            }
            *w++ = *s++;
        }
        if (*s) {
            s++;
        }
        *w++ = 0;
    }
    return n;
}

// Returns 1 if handled, 0 if not a kernel option, -1 on a bad value.
int kernel_option(const char* t, options* o)
{
    if (prefix(t, "trace=")) {
        o->trace = t + 6;
        return 1;
    }
    if (prefix(t, "tracebt=")) {
        o->tracebt = t + 8;
        return 1;
    }
    if (prefix(t, "sampler=")) {
        uint64_t hz;
        if (!parse_u64(t + 8, strlen(t + 8), &hz) || hz == 0 || hz > 10000) {
            kprintf("cmdline: bad sampler '%s' (samples per second per CPU, 1 to 10000)\n", t + 8);
            return -1;
        }
        o->sampler_hz = uint32_t(hz);
        return 1;
    }
    if (prefix(t, "tracebuf=")) {
        if (!parse_size(t + 9, &o->tracebuf) || o->tracebuf == 0) {
            kprintf("cmdline: bad tracebuf '%s' (a size such as 64K, 4M, 1G)\n", t + 9);
            return -1;
        }
        return 1;
    }
    if (prefix(t, "tracemode=")) {
        if (!strcmp(t + 10, "overwrite")) {
            o->tracemode = trace::ring_mode::overwrite;
        } else if (!strcmp(t + 10, "stream")) {
            o->tracemode = trace::ring_mode::stream;
        } else {
            kprintf("cmdline: bad tracemode '%s' (overwrite or stream)\n", t + 10);
            return -1;
        }
        return 1;
    }
    if (prefix(t, "idle_poll=")) {
        uint64_t us;
        if (!parse_u64(t + 10, strlen(t + 10), &us) || us > 1000000) {
            kprintf("cmdline: bad idle_poll '%s' (microseconds, 0 to 1000000)\n", t + 10);
            return -1;
        }
        o->idle_poll_us = int64_t(us);
        return 1;
    }
    if (prefix(t, "virtio_mmio.device=")) {
        if (o->n_virtio_mmio < max_virtio_mmio) {
            o->virtio_mmio[o->n_virtio_mmio++] = t + 19;
        }
        return 1;
    }
    return 0;
}

}  // namespace

const char* save(uint64_t paddr)
{
    const char* src = reinterpret_cast<const char*>(paddr);
    if (src) {
        size_t n = strnlen(src, max_len - 1);
        memcpy(saved, src, n);
        saved[n] = 0;
    }
    return saved;
}

bool parse(options* o)
{
    memcpy(tokens, saved, sizeof tokens);
    char* words[max_args * 2];
    int n = split(tokens, words, max_args * 2);
    if (n < 0) {
        kprintf("cmdline: too many words (at most %d)\n", max_args * 2);
        return false;
    }
    bool ok = true;
    bool verbatim = false;
    for (int i = 0; i < n; i++) {
        const char* t = words[i];
        if (verbatim) {
            if (o->argc == max_args) {
                kprintf("cmdline: too many app arguments (at most %d)\n", max_args);
                return false;
            }
            o->argv[o->argc++] = words[i];
            continue;
        }
        if (!strcmp(t, "--")) {
            if (!o->app) {
                kprintf("cmdline: '--' before app=NAME\n");
                ok = false;
            }
            verbatim = true;
            continue;
        }
        if (prefix(t, "app=")) {
            if (o->app) {
                kprintf("cmdline: app= given twice ('%s' and '%s')\n", o->app, t + 4);
                ok = false;
                continue;
            }
            o->app = t + 4;
            if (!*o->app) {
                kprintf("cmdline: app= needs a name\n");
                ok = false;
            }
            o->argv[0] = words[i] + 4;
            o->argc = 1;
            continue;
        }
        int k = kernel_option(t, o);
        if (k < 0) {
            ok = false;
        } else if (k == 0) {
            if (!o->app) {
                kprintf("cmdline: unknown option '%s' (before app=NAME)\n", t);
                ok = false;
            } else if (o->argc == max_args) {
                kprintf("cmdline: too many app arguments (at most %d)\n", max_args);
                return false;
            } else {
                o->argv[o->argc++] = words[i];
            }
        }
    }
    if (ok && !o->app) {
        kprintf("cmdline: no app=NAME given\n");
        ok = false;
    }
    o->argv[o->argc] = nullptr;
    return ok;
}

}  // namespace cmdline
