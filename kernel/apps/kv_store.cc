#include "apps/kv_store.hh"

#include <atomic>
#include <new>

#include "core/heap.hh"
#include "core/mutex.hh"
#include "lib/string.hh"
#include "tsc.hh"

namespace kv {

struct store::item {
    item* next;
    uint64_t hash;
    uint64_t expires;  // TSC; 0: never
    uint32_t flags;
    uint32_t vlen;
    uint16_t klen;
    char data[];  // key, then value
};

struct alignas(64) store::stripe {
    mutex m;
    std::atomic<uint64_t> count{0};  // items in this stripe's chains
};

namespace {

constexpr unsigned nstripes = 64;
constexpr int64_t relative_max = 60 * 60 * 24 * 30;  // memcached: larger exptimes are Unix times
constexpr uint64_t expired_already = 1;                // a TSC value that is always in the past

}  // namespace

uint64_t hash(const char* key, size_t klen)
{
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a: short keys, no SSE, good enough spread
    for (size_t i = 0; i < klen; i++) {
        h = (h ^ uint8_t(key[i])) * 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

bool store::init(unsigned log2_buckets)
{
    size_t n = size_t(1) << log2_buckets;
    buckets_ = static_cast<item**>(calloc(n, sizeof(item*)));
    stripes_ = static_cast<stripe*>(malloc(sizeof(stripe) * nstripes + alignof(stripe)));
    if (!buckets_ || !stripes_) {
        return false;
    }
    // The heap aligns to 16 bytes; a stripe wants its own cache line.
    auto a = (reinterpret_cast<uintptr_t>(stripes_) + alignof(stripe) - 1) & ~(uintptr_t(alignof(stripe)) - 1);
    stripes_ = reinterpret_cast<stripe*>(a);
    for (unsigned i = 0; i < nstripes; i++) {
        new (&stripes_[i]) stripe;
    }
    mask_ = n - 1;
    return true;
}

store::stripe* store::stripe_of(uint64_t h) { return &stripes_[(h & mask_) % nstripes]; }
void store::lock(stripe* s) { s->m.lock(); }
void store::unlock(stripe* s) { s->m.unlock(); }

bool store::live(const item* it) { return !it->expires || tsc::now() < it->expires; }

store::item** store::find(item** chain, const char* key, size_t klen, uint64_t h)
{
    item** p = chain;
    while (*p && !((*p)->hash == h && (*p)->klen == klen && !memcmp((*p)->data, key, klen))) {
        p = &(*p)->next;
    }
    return p;
}

void store::value_of(const item* it, uint32_t* flags, const char** v, size_t* len)
{
    *flags = it->flags;
    *v = it->data + it->klen;
    *len = it->vlen;
}

bool store::set(const char* key, size_t klen, uint32_t flags, int64_t exptime, const char* value, size_t vlen)
{
    auto* it = static_cast<item*>(malloc(sizeof(item) + klen + vlen));
    if (!it) {
        return false;
    }
    it->next = nullptr;
    it->hash = hash(key, klen);
    it->flags = flags;
    it->vlen = uint32_t(vlen);
    it->klen = uint16_t(klen);
    if (exptime < 0) {
        it->expires = expired_already;
    } else if (exptime == 0 || exptime > relative_max) {
        // FIXME: a Unix time needs the wall clock, which the kernel does not read yet: never expires.
        it->expires = 0;
    } else {
        it->expires = tsc::now() + tsc::from_ns(uint64_t(exptime) * 1000000000ull);
    }
    memcpy(it->data, key, klen);
    memcpy(it->data + klen, value, vlen);
    stripe* s = stripe_of(it->hash);
    lock(s);
    item** p = find(&buckets_[it->hash & mask_], key, klen, it->hash);
    item* old = *p;
    it->next = old ? old->next : nullptr;
    *p = it;
    if (!old) {
        s->count.fetch_add(1, std::memory_order_relaxed);
    }
    unlock(s);
    free(old);
    return true;
}

bool store::remove(const char* key, size_t klen)
{
    uint64_t h = hash(key, klen);
    stripe* s = stripe_of(h);
    lock(s);
    item** p = find(&buckets_[h & mask_], key, klen, h);
    item* old = *p;
    bool was_live = old && live(old);
    if (old) {
        *p = old->next;
        s->count.fetch_sub(1, std::memory_order_relaxed);
    }
    unlock(s);
    free(old);
    return was_live;
}

uint64_t store::items() const
{
    uint64_t n = 0;
    for (unsigned i = 0; i < nstripes; i++) {
        n += stripes_[i].count.load(std::memory_order_relaxed);
    }
    return n;
}

}  // namespace kv
