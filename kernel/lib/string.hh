// The C string and memory functions the compiler and the kernel rely on.
#pragma once

#include <stddef.h>
#include <stdint.h>

extern "C" {
void* memcpy(void* dst, const void* src, size_t n);
void* memmove(void* dst, const void* src, size_t n);
void* memset(void* dst, int c, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);
size_t strnlen(const char* s, size_t max);
int strcmp(const char* a, const char* b);
int strncmp(const char* a, const char* b, size_t n);
char* strchr(const char* s, int c);
}

// Copies at most size-1 bytes and always NUL-terminates (when size > 0).
size_t strlcpy(char* dst, const char* src, size_t size);

// Parses an unsigned decimal number (or 0x-prefixed hex) of the whole string
// [s, s+len). Returns false on an empty string, a stray character or overflow.
bool parse_u64(const char* s, size_t len, uint64_t* out);
