// `--name VALUE` options for apps (numbers only), with ranges and defaults.
//
//   uint64_t threads = 4;
//   app_option opts[] = {{"threads", &threads, 1, 64}, ...};
//   if (!parse_app_options(argc, argv, opts, "mutex")) return 2;
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/console.hh"
#include "lib/string.hh"

struct app_option {
    const char* name;  // without the dashes
    uint64_t* value;
    uint64_t min, max;
};

// Parses argv[1..argc) as `--name VALUE` pairs (also `--name=VALUE`). Prints
// what is wrong and returns false on an unknown option, a missing or bad
// value or one out of range.
template <size_t N>
bool parse_app_options(int argc, char** argv, app_option (&opts)[N], const char* app)
{
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (a[0] != '-' || a[1] != '-') {
            kprintf("%s: unexpected argument '%s'\n", app, a);
            return false;
        }
        const char* name = a + 2;
        const char* eq = strchr(name, '=');
        size_t nlen = eq ? size_t(eq - name) : strlen(name);
        app_option* o = nullptr;
        for (app_option& c : opts) {
            if (strlen(c.name) == nlen && !strncmp(c.name, name, nlen)) {
                o = &c;
            }
        }
        if (!o) {
            kprintf("%s: unknown option '%s'\n", app, a);
            return false;
        }
        const char* v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : nullptr);
        uint64_t x;
        if (!v || !parse_u64(v, strlen(v), &x)) {
            kprintf("%s: --%s needs a number\n", app, o->name);
            return false;
        }
        if (x < o->min || x > o->max) {
            kprintf("%s: --%s %lu out of range %lu..%lu\n", app, o->name, x, o->min, o->max);
            return false;
        }
        *o->value = x;
    }
    return true;
}
