// The key-value store behind the kv app: a chained hash table shared by all
// of the app's threads, with memcached's item fields (flags, expiry).
//
// NOTE (SMP, no spinlock): buckets are grouped in stripes, each behind a
// kernel mutex (lock-free, sleepable: core/mutex.hh). A reader copies the
// value out while it holds the stripe, so items need no reference counts;
// allocation and freeing happen outside the lock.
//
// FIXME: expired items are invisible but stay allocated until their key is
// set or deleted again (no sweeper, no LRU eviction).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace kv {

constexpr size_t key_max = 250;  // memcached's KEY_MAX_LENGTH

class store {
public:
    // 2^log2_buckets chains. False on no memory.
    bool init(unsigned log2_buckets);

    // Looks key up; on a live hit calls out(flags, value, len) with the
    // stripe held (copy, do not keep) and returns true.
    template <class F>
    bool get(const char* key, size_t klen, F&& out);

    // Stores (replacing any older item). exptime as memcached's: 0 never,
    // negative already expired, up to 30 days seconds from now, beyond that
    // a Unix time. False when memory runs out (nothing changed then).
    bool set(const char* key, size_t klen, uint32_t flags, int64_t exptime, const char* value, size_t vlen);

    // True if a live item was removed.
    bool remove(const char* key, size_t klen);

    uint64_t items() const;

private:
    struct item;
    struct stripe;
    // The link that points at key's item (live or expired), or the chain's
    // final null link. The caller holds the stripe.
    item** find(item** chain, const char* key, size_t klen, uint64_t h);
    stripe* stripe_of(uint64_t h);
    static bool live(const item* it);
    void lock(stripe* s);
    void unlock(stripe* s);
    static void value_of(const item* it, uint32_t* flags, const char** v, size_t* len);

    item** buckets_ = nullptr;
    uint64_t mask_ = 0;
    stripe* stripes_ = nullptr;
};

uint64_t hash(const char* key, size_t klen);

template <class F>
bool store::get(const char* key, size_t klen, F&& out)
{
    uint64_t h = hash(key, klen);
    stripe* s = stripe_of(h);
    lock(s);
    item** p = find(&buckets_[h & mask_], key, klen, h);
    bool hit = *p && live(*p);
    if (hit) {
        uint32_t flags;
        const char* v;
        size_t len;
        value_of(*p, &flags, &v, &len);
        out(flags, v, len);
    }
    unlock(s);
    return hit;
}

}  // namespace kv
