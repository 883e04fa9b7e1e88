#include "lib/printf.hh"

#include <stdint.h>

namespace {

struct out {
    char* buf;
    size_t size;
    size_t len = 0;

    void put(char c)
    {
        if (len + 1 < size) {
            buf[len] = c;
        }
        len++;
    }
    void pad(char c, int n)
    {
        while (n-- > 0) {
            put(c);
        }
    }
};

void put_number(out& o, uint64_t v, unsigned base, bool upper, bool negative, int width, bool zero,
                bool left, const char* prefix)
{
    char tmp[24];
    int n = 0;
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    int plen = 0;
    while (prefix[plen]) {
        plen++;
    }
    int total = n + plen + (negative ? 1 : 0);
    if (!left && !zero) {
        o.pad(' ', width - total);
    }
    if (negative) {
        o.put('-');
    }
    for (int i = 0; i < plen; i++) {
        o.put(prefix[i]);
    }
    if (!left && zero) {
        o.pad('0', width - total);
    }
    while (n) {
        o.put(tmp[--n]);
    }
    if (left) {
        o.pad(' ', width - total);
    }
}

}  // namespace

int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap)
{
    out o{buf, size};
    for (const char* p = fmt; *p; p++) {
        if (*p != '%') {
            o.put(*p);
            continue;
        }
        p++;
        bool left = false, zero = false;
        for (;; p++) {
            if (*p == '-') {
                left = true;
            } else if (*p == '0') {
                zero = true;
            } else {
                break;
            }
        }
        int width = 0;
        if (*p == '*') {
            width = va_arg(ap, int);
            p++;
        } else {
            while (*p >= '0' && *p <= '9') {
                width = width * 10 + (*p++ - '0');
            }
        }
        int prec = -1;
        if (*p == '.') {
            p++;
            prec = 0;
            if (*p == '*') {
                prec = va_arg(ap, int);
                p++;
            } else {
                while (*p >= '0' && *p <= '9') {
                    prec = prec * 10 + (*p++ - '0');
                }
            }
        }
        int longs = 0;
        while (*p == 'l' || *p == 'z') {
            longs += *p == 'z' ? 2 : 1;
            p++;
        }
        switch (*p) {
        case 'd':
        case 'i': {
            int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            uint64_t mag = v < 0 ? uint64_t(0) - uint64_t(v) : uint64_t(v);
            put_number(o, mag, 10, false, v < 0, width, zero, left, "");
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            put_number(o, v, *p == 'u' ? 10 : 16, *p == 'X', false, width, zero, left, "");
            break;
        }
        case 'p':
            put_number(o, reinterpret_cast<uintptr_t>(va_arg(ap, void*)), 16, false, false, width,
                       zero, left, "0x");
            break;
        case 'c':
            o.pad(' ', left ? 0 : width - 1);
            o.put(char(va_arg(ap, int)));
            o.pad(' ', left ? width - 1 : 0);
            break;
        case 's': {
            const char* s = va_arg(ap, const char*);
            if (!s) {
                s = "(null)";
            }
            int n = 0;
            while (s[n] && (prec < 0 || n < prec)) {
                n++;
            }
            o.pad(' ', left ? 0 : width - n);
            for (int i = 0; i < n; i++) {
                o.put(s[i]);
            }
            o.pad(' ', left ? width - n : 0);
            break;
        }
        case '%':
            o.put('%');
            break;
        case 0:
            p--;  // a lone '%' at the end
            break;
        default:
            o.put('%');
            o.put(*p);
            break;
        }
    }
    if (size) {
        buf[o.len < size ? o.len : size - 1] = 0;
    }
    return int(o.len);
}

int snprintf(char* buf, size_t size, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
