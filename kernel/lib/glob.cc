#include "lib/glob.hh"

bool glob_match(const char* pat, size_t patlen, const char* name)
{
    // Iterative matcher with one backtrack point (the last '*'): linear in
    // practice, no recursion.
    size_t p = 0;
    const char* n = name;
    size_t star_p = size_t(-1);
    const char* star_n = nullptr;
    while (*n) {
        if (p < patlen && (pat[p] == '?' || pat[p] == *n)) {
            p++;
            n++;
        } else if (p < patlen && pat[p] == '*') {
            star_p = p++;
            star_n = n;
        } else if (star_p != size_t(-1)) {
            p = star_p + 1;
            n = ++star_n;
        } else {
            return false;
        }
    }
    while (p < patlen && pat[p] == '*') {
        p++;
    }
    return p == patlen;
}
