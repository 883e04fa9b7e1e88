# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Interning backtraces in one pass: each record's frames read where they lie, hashed, and
looked up in an open-addressing table of the distinct stacks (osvtrace/model/stacks.py).

numpy can intern a frame matrix (hash the rows, factorize the hashes, check the rows), but
only after the matrix exists: on 10 M records that is 800 MB gathered from the trace, then
read three more times. Here a record's frames go from the trace's bytes to its stack id
without a copy, and only the distinct stacks are stored. A lookup compares the whole row,
so equal ids mean equal stacks whatever the hash does.

A row is the 8-byte words at `start[i]` (any alignment), at most `count[i]` of them, ending
at the first 0 (a 0 ends a stack: what follows is padding or garbage). A row with no frame
gets -1.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

DEF MAX_WIDTH = 255  # counts are uint8


cdef inline uint64_t ld64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline uint64_t _mix(uint64_t h) noexcept nogil:
    # NOTE: splitmix64's finaliser: every input bit reaches every output bit
    h ^= h >> 30
    h *= <uint64_t>0xBF58476D1CE4E5B9
    h ^= h >> 27
    h *= <uint64_t>0x94D049BB133111EB
    h ^= h >> 31
    return h


def intern_rows(const uint8_t[::1] buf, const int64_t[::1] start, const uint8_t[::1] count, Py_ssize_t row0,
                uint64_t[:, ::1] uniq, int64_t[::1] nuniq, int32_t[::1] slot_id, uint64_t[::1] slot_hash,
                int32_t[::1] ids, uint64_t hash_mask=<uint64_t>0xFFFFFFFFFFFFFFFF):
    """Stack ids of rows row0.. into ids; returns the first row not done (len(start) when all are).

    uniq: the distinct stacks so far (their first nuniq[0] rows, 0-padded to its width, which
    must be at least every count); slot_id/slot_hash: the hash table (a power of two long;
    slot_id: stack id + 1, 0 when free). Stops before a row that is new when uniq is full or
    the table more than half full: the caller grows them and calls again from that row.
    hash_mask: ANDed into each hash (tests give 0 to make every stack collide)."""
    cdef Py_ssize_t n = start.shape[0], width = uniq.shape[1], cap = uniq.shape[0]
    cdef Py_ssize_t mask = slot_id.shape[0] - 1, size = buf.shape[0]
    cdef Py_ssize_t i, d, k, m, s, h_at
    cdef int64_t u = nuniq[0]
    cdef int64_t at
    cdef uint64_t h, w
    cdef uint64_t row[MAX_WIDTH]
    cdef const uint64_t* known
    cdef bint same
    cdef Py_ssize_t stop = n
    if width > MAX_WIDTH:
        raise ValueError(f"stacks deeper than {MAX_WIDTH} frames")
    with nogil:
        for i in range(row0, n):
            at = start[i]
            m = count[i]
            if m > width:
                m = width
            d = 0
            h = <uint64_t>0x9E3779B97F4A7C15
            while d < m and at + 8 * d + 8 <= size:
                w = ld64(&buf[at + 8 * d])
                if w == 0:
                    break
                row[d] = w
                h = (h ^ w) * <uint64_t>0x9E3779B97F4A7C15  # one multiply a frame, the full mix once a row
                h = (h << 31) | (h >> 33)
                d += 1
            if d == 0:
                ids[i] = -1
                continue
            h = _mix(h ^ <uint64_t>d) & hash_mask
            h_at = <Py_ssize_t>(h & <uint64_t>mask)
            while True:
                s = slot_id[h_at]
                if s == 0:
                    break
                if slot_hash[h_at] == h:
                    known = &uniq[s - 1, 0]
                    same = d == width or known[d] == 0
                    k = 0
                    while same and k < d:
                        same = known[k] == row[k]
                        k += 1
                    if same:
                        break
                h_at = (h_at + 1) & mask
            if s:
                ids[i] = <int32_t>(s - 1)
                continue
            if u >= cap or 2 * (u + 1) > mask + 1:
                stop = i
                break
            for k in range(d):
                uniq[u, k] = row[k]
            for k in range(d, width):
                uniq[u, k] = 0
            slot_id[h_at] = <int32_t>(u + 1)
            slot_hash[h_at] = h
            ids[i] = <int32_t>u
            u += 1
    nuniq[0] = u
    return stop
