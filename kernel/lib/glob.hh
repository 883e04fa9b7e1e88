// Anchored shell-style globs: '*' matches any run of characters, '?' one
// character, everything else itself. "mutex_lock" matches only that name
// (unlike OSv's unanchored regexes, where it also enabled mutex_lock_wait).
#pragma once

#include <stddef.h>

bool glob_match(const char* pat, size_t patlen, const char* name);
