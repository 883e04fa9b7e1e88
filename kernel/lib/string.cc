// NOTE: the compiler turns plain byte loops into calls to memset/memcpy, which
// would recurse here; the string instructions avoid that and are what TCG
// runs fastest anyway.
#include "lib/string.hh"

extern "C" {

void* memcpy(void* dst, const void* src, size_t n)
{
    void* d = dst;
    asm volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

void* memmove(void* dst, const void* src, size_t n)
{
    if (dst <= src || static_cast<const char*>(src) + n <= static_cast<char*>(dst)) {
        return memcpy(dst, src, n);
    }
    // Overlapping with dst above src: copy backwards.
    char* d = static_cast<char*>(dst) + n - 1;
    const char* s = static_cast<const char*>(src) + n - 1;
    asm volatile("std; rep movsb; cld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return dst;
}

void* memset(void* dst, int c, size_t n)
{
    void* d = dst;
    if ((n & 7) == 0 && c == 0) {
        size_t q = n / 8;
        asm volatile("rep stosq" : "+D"(d), "+c"(q) : "a"(0ul) : "memory");
    } else {
        asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    }
    return dst;
}

int memcmp(const void* a, const void* b, size_t n)
{
    const unsigned char* x = static_cast<const unsigned char*>(a);
    const unsigned char* y = static_cast<const unsigned char*>(b);
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) {
            return x[i] < y[i] ? -1 : 1;
        }
    }
    return 0;
}

size_t strlen(const char* s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

size_t strnlen(const char* s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n]) {
        n++;
    }
    return n;
}

int strcmp(const char* a, const char* b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return static_cast<unsigned char>(*a) - static_cast<unsigned char>(*b);
}

int strncmp(const char* a, const char* b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i] || !a[i]) {
            return static_cast<unsigned char>(a[i]) - static_cast<unsigned char>(b[i]);
        }
    }
    return 0;
}

char* strchr(const char* s, int c)
{
    for (;; s++) {
        if (*s == static_cast<char>(c)) {
            return const_cast<char*>(s);
        }
        if (!*s) {
            return nullptr;
        }
    }
}

}  // extern "C"

size_t strlcpy(char* dst, const char* src, size_t size)
{
    size_t n = strlen(src);
    if (size) {
        size_t k = n < size - 1 ? n : size - 1;
        memcpy(dst, src, k);
        dst[k] = 0;
    }
    return n;
}

bool parse_u64(const char* s, size_t len, uint64_t* out)
{
    unsigned base = 10;
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        len -= 2;
    }
    if (len == 0) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (base == 16 && c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else if (base == 16 && c >= 'A' && c <= 'F') {
            d = c - 'A' + 10;
        } else {
            return false;
        }
        if (v > (~uint64_t(0) - d) / base) {
            return false;
        }
        v = v * base + d;
    }
    *out = v;
    return true;
}
