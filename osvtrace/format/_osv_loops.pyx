# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The one loop numpy cannot do for OSv's traces: finding where each record starts.

OSv's records are variable length (a 48-byte header, an optional backtrace, a payload
packed by the tracepoint's struct signature, blobs with a 16-bit length), so a record's
start is known only once the one before it is framed. `walk_records` frames a run of
records in one pass and copies their header fields out (time, cpu, thread, tracepoint);
everything else (arguments, strings, blobs, backtrace frames) is read afterwards with
vectorised gathers at the payload offsets it returns (osvtrace/format/osv_records.py).

Two layouts, one loop:
- RING: OSv's per-CPU ring contents, which is also what an OSVT dump's TRCS chunks hold
  (the dump leaves out the page-end padding). Records start 8-aligned; header
  tp, thread, name[16], time, cpu, flags (48 bytes); `flags & 1`: bt_len frames follow;
  the payload's arguments are aligned relative to its start; a tp of 0 pads to the end of
  a `page`-byte trace page (page = 0: the data ends there, as in a dump), a tp of ~0 is
  a record still being written (end of that CPU's data).
- TRACEFILE: `osv trace save`'s "format B": records packed with no alignment between them;
  header tp, thread, name[16], time, cpu (44 bytes), then frames up to a 0, then the payload.

Signature codes (per tracepoint, from osv_records.sig_codes): 1, 2, 4, 8 a scalar of that
size and alignment, 50 a pascal string (50 bytes, alignment 1), 255 a blob (u16 length,
alignment 2, then the bytes).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

# statuses (osv_records.STATUS names them)
DEF DONE = 0          # the data ended where a record would start
DEF END_MARK = 1      # a record still being written (tp == ~0): the CPU's data ends there
DEF UNKNOWN_TP = 2    # a tracepoint key the dictionary does not have
DEF CUT = 3           # a record runs past the end of the data
DEF FULL = 4          # the output columns are full (caller's sizing bug)
DEF BAD_BACKTRACE = 5  # a tracefile backtrace longer than max_frames
DEF TOO_MANY_THREADS = 6


cdef inline uint64_t ld64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline uint32_t ld32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint16_t ld16(const uint8_t* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


cdef inline Py_ssize_t _find(const uint64_t* keys, Py_ssize_t n, uint64_t key) noexcept nogil:
    """Index of key in the sorted keys, or -1."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < n and keys[lo] == key else -1


cdef inline Py_ssize_t _payload_size(const uint8_t* pay, const uint8_t* end, const uint8_t* codes,
                                     Py_ssize_t ncodes, Py_ssize_t* longest) noexcept nogil:
    """Bytes of a payload with blobs, or -1 when it runs past end; *longest: its longest blob."""
    cdef Py_ssize_t off = 0, i, b
    cdef uint8_t c
    longest[0] = 0
    for i in range(ncodes):
        c = codes[i]
        if c == 255:
            off = (off + 1) & ~1
            if pay + off + 2 > end:
                return -1
            b = ld16(pay + off)
            if b > longest[0]:
                longest[0] = b
            off += 2 + b
        elif c == 50:
            off += 50
        else:
            off = (off + c - 1) & ~(<Py_ssize_t>c - 1)
            off += c
    if pay + off > end:
        return -1
    return off


cdef inline int64_t _thread_index(uint64_t ptr, uint64_t* hkeys, uint32_t* hvals, Py_ssize_t hmask,
                                  uint64_t* thr_ptr, int64_t* thr_last, Py_ssize_t* nthr,
                                  Py_ssize_t max_thr, int64_t row) noexcept nogil:
    """Small index of a thread pointer (first seen, first numbered); -1 when the table is full."""
    cdef Py_ssize_t h = <Py_ssize_t>((ptr * <uint64_t>0x9E3779B97F4A7C15) >> 40) & hmask
    cdef uint32_t v
    while True:
        v = hvals[h]
        if v == 0:
            if nthr[0] >= max_thr:
                return -1
            hkeys[h] = ptr
            hvals[h] = <uint32_t>(nthr[0] + 1)
            thr_ptr[nthr[0]] = ptr
            thr_last[nthr[0]] = row
            nthr[0] += 1
            return nthr[0] - 1
        if hkeys[h] == ptr:
            thr_last[v - 1] = row
            return v - 1
        h = (h + 1) & hmask


def walk_records(const uint8_t[::1] buf, Py_ssize_t start, Py_ssize_t end, bint tracefile, Py_ssize_t page,
                 Py_ssize_t bt_len, Py_ssize_t max_frames,
                 const uint64_t[::1] keys, const uint16_t[::1] key_tp,
                 const int32_t[::1] fixed_size, const int32_t[::1] code_start, const uint8_t[::1] codes,
                 int64_t[::1] out_off, uint8_t[::1] out_nbt, int64_t[::1] out_time,
                 uint16_t[::1] out_cpu, uint16_t[::1] out_tp, uint32_t[::1] out_thr, Py_ssize_t pos,
                 uint64_t[::1] hkeys, uint32_t[::1] hvals, uint64_t[::1] thr_ptr, int64_t[::1] thr_last,
                 int64_t[::1] nthreads, int64_t[::1] cpu_first, int64_t[::1] cpu_last, int64_t[::1] cpu_count,
                 int64_t[::1] blob_max):
    """Frame the records of buf[start:end] and append their columns from row `pos` on.

    keys: the tracepoint keys, sorted; key_tp[i]: the tracepoint id of keys[i]; per id:
    fixed_size (payload bytes, -1 when it has blobs), its signature codes
    codes[code_start[id]:code_start[id + 1]]. The thread table (hkeys/hvals: an open
    addressing hash, a power of two long; thr_ptr/thr_last: pointer and last row per
    thread index; nthreads[0]: how many) carries over between calls, as do the per-CPU
    first and last row and record count (cpu_first: -1 until seen; CPUs past their length
    are left out of them).

    A record's payload starts after its header and frames (and, in a tracefile, the 0 that
    ends them): the caller derives it from out_off and out_nbt. blob_max[id]: the longest
    blob seen in a record of that tracepoint.

    Returns (records framed, offset where framing stopped, status, times nondecreasing,
    all records on one CPU)."""
    cdef Py_ssize_t nkeys = keys.shape[0], ntps = fixed_size.shape[0], cap = out_off.shape[0]
    cdef Py_ssize_t hmask = hkeys.shape[0] - 1, max_thr = thr_ptr.shape[0], ncpu_cap = cpu_first.shape[0]
    cdef uint32_t c
    cdef Py_ssize_t n = 0, k, tp, size, nbt, hdr = 44 if tracefile else 48, nthr = nthreads[0]
    cdef int64_t ti
    cdef int status = DONE
    cdef bint ok, ordered = True, one_cpu = True
    cdef int64_t t, prev_t = -0x7FFFFFFFFFFFFFFF
    cdef uint32_t first_c = 0xFFFFFFFF
    cdef Py_ssize_t blen, last_k = -1
    cdef uint64_t last_key = 0, last_ptr = 0, ptr
    cdef int64_t last_ti = -1
    cdef uint64_t key
    cdef const uint8_t* base
    cdef const uint8_t* p
    cdef const uint8_t* e
    cdef const uint8_t* q
    cdef const uint8_t* pay
    if not (0 <= start <= end <= buf.shape[0]):
        raise ValueError(f"[{start}, {end}) is outside the {buf.shape[0]} bytes")
    if ntps + 1 != code_start.shape[0] or key_tp.shape[0] != nkeys:
        raise ValueError("tracepoint tables differ in length")
    if not (out_nbt.shape[0] == out_time.shape[0] == out_cpu.shape[0] == out_tp.shape[0]
            == out_thr.shape[0] == cap) or pos < 0 or pos > cap or blob_max.shape[0] != ntps:
        raise ValueError("output columns differ in length")
    if hkeys.shape[0] == 0 or hkeys.shape[0] & hmask or hvals.shape[0] != hkeys.shape[0] \
            or thr_last.shape[0] != max_thr or nthreads.shape[0] < 1:
        raise ValueError("bad thread table")
    if cpu_last.shape[0] != ncpu_cap or cpu_count.shape[0] != ncpu_cap:
        raise ValueError("per-CPU tables differ in length")
    for k in range(nkeys):
        if key_tp[k] >= ntps:
            raise ValueError("key_tp names a tracepoint outside the tables")
    for k in range(ntps):
        if not (0 <= code_start[k] <= code_start[k + 1] <= codes.shape[0]):
            raise ValueError("bad code_start")
    if end == start:
        return 0, start, DONE, True, True
    base = &buf[0]
    p = base + start
    e = base + end
    with nogil:
        while True:
            if p + 8 > e:
                if p != e and tracefile:
                    status = CUT
                break
            key = ld64(p)
            if not tracefile:
                if key == 0:  # padding to the end of a trace page, or the end of a dump's data
                    if page == 0:
                        break
                    p = base + start + (((p - base - start) // page) + 1) * page
                    continue
                if key == <uint64_t>0xFFFFFFFFFFFFFFFF:
                    status = END_MARK
                    break
            if p + hdr > e:
                status = CUT
                break
            if key == last_key and last_k >= 0:  # runs of one tracepoint are common: skip the search
                k = last_k
            else:
                k = _find(&keys[0], nkeys, key) if nkeys else -1
                if k < 0:
                    status = UNKNOWN_TP
                    break
                last_key, last_k = key, k
            tp = key_tp[k]
            if tracefile:
                q = p + 44
                nbt = 0
                ok = False
                while q + 8 <= e:
                    q += 8
                    if ld64(q - 8) == 0:
                        ok = True
                        break
                    nbt += 1
                    if nbt > max_frames:
                        break
                if not ok:
                    status = BAD_BACKTRACE if nbt > max_frames else CUT
                    break
                pay = q
            else:
                nbt = bt_len if ld32(p + 44) & 1 else 0
                pay = p + 48 + 8 * nbt
            size = fixed_size[tp]
            if size < 0:
                size = _payload_size(pay, e, &codes[code_start[tp]], code_start[tp + 1] - code_start[tp], &blen)
                if size < 0:
                    status = CUT
                    break
                if blen > blob_max[tp]:
                    blob_max[tp] = blen
            elif pay + size > e:
                status = CUT
                break
            if pos + n >= cap:
                status = FULL
                break
            ptr = ld64(p + 8)
            if ptr == last_ptr and last_ti >= 0:  # a thread's records come in runs: skip the hash
                ti = last_ti
                thr_last[ti] = pos + n
            else:
                ti = _thread_index(ptr, &hkeys[0], &hvals[0], hmask, &thr_ptr[0], &thr_last[0], &nthr,
                                   max_thr, pos + n)
                if ti < 0:
                    status = TOO_MANY_THREADS
                    break
                last_ptr, last_ti = ptr, ti
            out_off[pos + n] = p - base
            out_nbt[pos + n] = <uint8_t>nbt
            t = <int64_t>ld64(p + 32)
            out_time[pos + n] = t
            if t < prev_t:
                ordered = False
            prev_t = t
            c = ld32(p + 40)
            if c != first_c:
                if n:
                    one_cpu = False
                first_c = c
            out_cpu[pos + n] = <uint16_t>c
            if c < ncpu_cap:
                if cpu_first[c] < 0:
                    cpu_first[c] = pos + n
                cpu_last[c] = pos + n
                cpu_count[c] += 1
            out_tp[pos + n] = <uint16_t>tp
            out_thr[pos + n] = <uint32_t>ti
            n += 1
            if tracefile:
                p = pay + size
            else:
                p = base + start + (((pay + size - base - start) + 7) & ~7)
    nthreads[0] = nthr
    return n, p - base, status, ordered, one_cpu


def remap_u32(uint32_t[::1] a, const uint32_t[::1] table):
    """a[i] = table[a[i]] in place (thread indexes to ids without a fresh column)."""
    cdef Py_ssize_t i, n = a.shape[0], m = table.shape[0]
    for i in range(n):
        if a[i] >= m:
            raise ValueError(f"index {a[i]} outside the {m}-entry table")
    with nogil:
        for i in range(n):
            a[i] = table[a[i]]


def gather_rows(const uint8_t[::1] buf, const int64_t[::1] pos, uint8_t[:, ::1] out):
    """out[i] = buf[pos[i]:pos[i] + out.shape[1]] (any alignment): the arguments and frames of
    records found by walk_records, read in one pass instead of a (rows, bytes) index gather.
    Bytes past the end of buf are left as they are in out."""
    cdef Py_ssize_t i, n = pos.shape[0], w = out.shape[1], size = buf.shape[0], k
    cdef int64_t p
    if out.shape[0] < n:
        raise ValueError(f"{n} positions, {out.shape[0]} output rows")
    if n == 0 or w == 0:
        return
    with nogil:
        for i in range(n):
            p = pos[i]
            if p >= 0 and p + w <= size:
                memcpy(&out[i, 0], &buf[p], w)
            else:
                for k in range(w):
                    if 0 <= p + k < size:
                        out[i, k] = buf[p + k]
