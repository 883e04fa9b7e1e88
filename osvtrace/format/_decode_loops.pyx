# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The decoder's two hot loops, compiled (osvtrace/format/decode.py drives them).

- copy_chunk: one chunk's records into the staging columns, checking their framing.
  With numpy that is a dozen passes over strided fields (~30 ns per record for
  one-slot records, ~45 ns per slot when any record has more); here one pass.
- merge_runs: each CPU's records are already in time order, so putting a trace in
  time order is a k-way merge. numpy has no merge: a stable argsort of the
  concatenated runs and a gather per column cost 15-30 ns per event; this loop reads
  each run once and writes every output column in the same pass.
Both run without the GIL, so the decoder's threads run them in parallel.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

ctypedef fused row_t:
    int32_t
    int64_t


cdef inline bint _before(const int64_t* time, const int64_t* pos, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Run a's head comes before run b's: earlier time, ties in run order (stability)."""
    cdef int64_t ta = time[pos[a]], tb = time[pos[b]]
    return ta < tb or (ta == tb and a < b)


def merge_runs(const int64_t[::1] time, const uint32_t[::1] tid, const uint16_t[::1] tp, const row_t[::1] rows,
               const int64_t[::1] lo, const int64_t[::1] hi, const uint16_t[::1] cpu,
               int64_t[::1] out_time, uint16_t[::1] out_cpu, uint32_t[::1] out_tid, uint16_t[::1] out_tp,
               row_t[::1] out_rows) -> None:
    """Merge the sorted runs [lo[r], hi[r]) of the staging columns into the outputs.

    Ties keep run order (run r before run r + 1), so listing runs in CPU order keeps
    equal timestamps in CPU order. The outputs must hold exactly the runs' total."""
    cdef Py_ssize_t k = lo.shape[0], r, n = 0, o = 0, i, size
    cdef int64_t pos[64]
    cdef int64_t end[64]
    cdef Py_ssize_t heap[64]
    if k != hi.shape[0] or k != cpu.shape[0]:
        raise ValueError("lo, hi and cpu must have one entry per run")
    if k > 64:
        raise ValueError(f"{k} runs: at most 64 (one per CPU)")
    for r in range(k):
        if not 0 <= lo[r] <= hi[r] <= time.shape[0]:
            raise ValueError(f"run {r} [{lo[r]}, {hi[r]}) is outside the {time.shape[0]} staging rows")
        n += hi[r] - lo[r]
    if not (out_time.shape[0] == out_cpu.shape[0] == out_tid.shape[0] == out_tp.shape[0] == out_rows.shape[0] == n):
        raise ValueError(f"the outputs must hold the runs' {n} records")
    if tid.shape[0] != time.shape[0] or tp.shape[0] != time.shape[0] or rows.shape[0] != time.shape[0]:
        raise ValueError("staging columns differ in length")
    if n == 0:
        return
    # raw pointers for the loops (checked above): with memoryviews, a store through an int64
    # output may alias their int64 strides, which the compiler must then reload
    cdef const int64_t* T = &time[0]
    cdef const uint32_t* TID = &tid[0]
    cdef const uint16_t* TP = &tp[0]
    cdef const row_t* ROW = &rows[0]
    cdef int64_t* OT = &out_time[0]
    cdef uint16_t* OC = &out_cpu[0]
    cdef uint32_t* OTID = &out_tid[0]
    cdef uint16_t* OTP = &out_tp[0]
    cdef row_t* OROW = &out_rows[0]
    with nogil:
        if k == 2:
            _merge2(T, TID, TP, ROW, lo[0], hi[0], lo[1], hi[1], cpu[0], cpu[1], OT, OC, OTID, OTP, OROW)
        else:
            # A binary min-heap of the runs that still hold records, keyed by their heads.
            size = 0
            for r in range(k):
                pos[r] = lo[r]
                end[r] = hi[r]
                if lo[r] < hi[r]:
                    heap[size] = r
                    size += 1
            for i in range(size // 2 - 1, -1, -1):
                _sift(T, pos, heap, size, i)
            while size > 1:
                r = heap[0]
                _put(o, pos[r], cpu[r], T, TID, TP, ROW, OT, OC, OTID, OTP, OROW)
                o += 1
                pos[r] += 1
                if pos[r] == end[r]:
                    size -= 1
                    heap[0] = heap[size]
                _sift(T, pos, heap, size, 0)
            if size == 1:
                r = heap[0]
                _copy(o, pos[r], end[r], cpu[r], T, TID, TP, ROW, OT, OC, OTID, OTP, OROW)


cdef void _merge2(const int64_t* T, const uint32_t* TID, const uint16_t* TP, const row_t* ROW,
                  Py_ssize_t i, Py_ssize_t ie, Py_ssize_t j, Py_ssize_t je, uint16_t c0, uint16_t c1,
                  int64_t* OT, uint16_t* OC, uint32_t* OTID, uint16_t* OTP, row_t* OROW) noexcept nogil:
    """Two runs merged from both ends at once, ties in run order.

    Branch-free (the runs interleave every record or two, so a branch would be
    mispredicted half the time), each step's loads wait on the previous step's
    comparison: one merge is a chain of dependent loads. Merging the smallest half
    forwards and the largest half backwards in the same loop runs two independent
    chains side by side (1.4x here). The halves partition the records, as (time,
    run, position) orders them totally."""
    cdef Py_ssize_t n = (ie - i) + (je - j), m = n // 2, o = 0, p = n - 1
    cdef Py_ssize_t i0 = i, j0 = j, x = ie - 1, y = je - 1
    cdef bint b, d
    while o < m and i < ie and j < je and x >= i0 and y >= j0:
        b = T[j] < T[i]  # forwards: run 1's head first only if earlier
        d = T[y] >= T[x]  # backwards: run 1's tail last unless earlier
        _put(o, j if b else i, c1 if b else c0, T, TID, TP, ROW, OT, OC, OTID, OTP, OROW)
        _put(p, y if d else x, c1 if d else c0, T, TID, TP, ROW, OT, OC, OTID, OTP, OROW)
        o += 1
        j += b
        i += 1 - b
        p -= 1
        y -= d
        x -= 1 - d
    # what is left once a run's end is near: one record at a time
    while o < m:
        b = i >= ie or (j < je and T[j] < T[i])  # run 1's head next
        _put(o, j if b else i, c1 if b else c0, T, TID, TP, ROW, OT, OC, OTID, OTP, OROW)
        o += 1
        j += b
        i += 1 - b
    while p >= m:
        d = x < i0 or (y >= j0 and T[y] >= T[x])  # run 1's tail next
        _put(p, y if d else x, c1 if d else c0, T, TID, TP, ROW, OT, OC, OTID, OTP, OROW)
        p -= 1
        y -= d
        x -= 1 - d


cdef inline void _sift(const int64_t* time, const int64_t* pos, Py_ssize_t* heap, Py_ssize_t size,
                       Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t child, top = heap[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and _before(time, pos, heap[child + 1], heap[child]):
            child += 1
        if not _before(time, pos, heap[child], top):
            break
        heap[i] = heap[child]
        i = child
    heap[i] = top


cdef inline void _put(Py_ssize_t o, Py_ssize_t c, uint16_t cpu, const int64_t* T, const uint32_t* TID,
                      const uint16_t* TP, const row_t* ROW, int64_t* OT, uint16_t* OC, uint32_t* OTID,
                      uint16_t* OTP, row_t* OROW) noexcept nogil:
    """Output record o is staging record c, of CPU cpu."""
    OT[o] = T[c]
    OC[o] = cpu
    OTID[o] = TID[c]
    OTP[o] = TP[c]
    OROW[o] = ROW[c]


cdef inline void _copy(Py_ssize_t o, Py_ssize_t a, Py_ssize_t b, uint16_t cpu, const int64_t* T,
                       const uint32_t* TID, const uint16_t* TP, const row_t* ROW, int64_t* OT, uint16_t* OC,
                       uint32_t* OTID, uint16_t* OTP, row_t* OROW) noexcept nogil:
    """The rest of one run [a, b), once every other run is exhausted."""
    cdef Py_ssize_t x
    for x in range(b - a):
        _put(o + x, a + x, cpu, T, TID, TP, ROW, OT, OC, OTID, OTP, OROW)

cdef enum:
    ID_EMPTY = 0  # osvtrace/catalog/layout.py
    ID_CONT = 0xFFFF
    FLAG_STACK = 0x01


def copy_chunk(const uint64_t[:, ::1] slots, Py_ssize_t row, Py_ssize_t count, const uint8_t[::1] nslots_of,
               const uint8_t[::1] stack_of, int64_t tsc_base, double ns_per_tick, int64_t[::1] time,
               uint32_t[::1] tid, uint16_t[::1] tp, row_t[::1] rows, Py_ssize_t pos):
    """Copy the whole, well-framed records of slots [row, row + count) (one chunk of one
    CPU) into the staging columns from pos on:
    (records copied, their times nondecreasing, partial slots, invalid slots).

    A record is whole when its header's id is a tracepoint's (nslots_of[id] > 0), its
    nslots field says that many slots (or, with the header's FLAG_STACK, 1..stack_of[id]
    more: the stack trailer), and each continuation slot k carries ID_CONT and k. Every other slot is counted once: partial when it belongs to a record cut by the
    chunk's start (leading continuations) or end (from the first header whose record
    runs past the end), invalid otherwise (corruption). Times are (tsc - tsc_base) *
    ns_per_tick as numpy's int64 -> float64 -> int64 gives (ns_per_tick == 1: exact)."""
    cdef Py_ssize_t i, k, n, step, lead = 0, cut = count, o = 0, partial = 0, invalid = 0
    cdef uint64_t w, w2
    cdef uint16_t ident
    cdef int64_t t, prev = 0
    cdef bint ordered = True, whole, exact = ns_per_tick == 1.0
    if slots.shape[1] != 4:
        raise ValueError("slots must be viewed as rows of four 64-bit words")
    if nslots_of.shape[0] != 0x10000 or stack_of.shape[0] != 0x10000:
        raise ValueError("nslots_of and stack_of must have an entry for every 16-bit id")
    if row < 0 or count < 0 or row + count > slots.shape[0]:
        raise ValueError(f"slots [{row}, {row + count}) are outside the {slots.shape[0]} in the file")
    if pos < 0 or pos + count > time.shape[0] or pos + count > tid.shape[0] or pos + count > tp.shape[0] \
            or pos + count > rows.shape[0]:
        raise ValueError(f"staging [{pos}, {pos + count}) is outside the columns")
    if count == 0:
        return 0, True, 0, 0
    # raw pointers: stores through the int64 columns could alias the memoryviews'
    # int64 strides, which would make the compiler reload them after every store
    cdef const uint64_t* sl = &slots[row, 0]
    cdef const uint8_t* nsl = &nslots_of[0]
    cdef const uint8_t* stk = &stack_of[0]
    cdef int64_t* out_t = &time[pos]
    cdef uint32_t* out_tid = &tid[pos]
    cdef uint16_t* out_tp = &tp[pos]
    cdef row_t* out_row = &rows[pos]
    with nogil:
        while lead < count and (sl[4 * lead] & 0xFFFF) == ID_CONT:
            lead += 1
        # a record is at most 255 slots: only the last 255 headers can run past the end
        for i in range(count - 255 if count > 255 else 0, count):
            w = sl[4 * i]
            n = (w >> 16) & 0xFF
            if _framed(w, nsl, stk) and i + n > count:
                cut = i
                break
        i = 0
        while i < count:
            w = sl[4 * i]  # id:16 nslots:8 flags:8 tid:32, little-endian
            ident = <uint16_t>(w & 0xFFFF)
            n = (w >> 16) & 0xFF
            if n == 1 and _framed(w, nsl, stk):
                # a one-slot record, the common case. NOTE: stepping by n read from the slot
                # makes each slot's load wait for the previous one's; this branch, predicted,
                # steps by a constant, so the loads overlap (twice as fast here)
                step = 1
            else:
                whole = _framed(w, nsl, stk) and i + n <= count
                k = 1
                while whole and k < n:
                    w2 = sl[4 * (i + k)]
                    whole = (w2 & 0xFFFF) == ID_CONT and ((w2 >> 16) & 0xFF) == <uint64_t>k
                    k += 1
                if not whole:
                    if i < lead or i >= cut:
                        partial += 1
                    else:
                        invalid += 1
                    i += 1
                    continue
                step = n
            t = _ns(sl[4 * i + 1], tsc_base, ns_per_tick, exact)
            ordered &= not o or t >= prev
            prev = t
            out_t[o] = t
            out_tid[o] = <uint32_t>(w >> 32)
            out_tp[o] = ident
            out_row[o] = row + i
            o += 1
            i += step
    return o, ordered, partial, invalid


cdef inline bint _framed(uint64_t w, const uint8_t* nsl, const uint8_t* stk) noexcept nogil:
    """A header slot (first word `w`) of a tracepoint's record whose nslots field is the
    catalog's for it, or, flagged FLAG_STACK, that plus 1..stk[id] trailer slots."""
    cdef uint16_t ident = <uint16_t>(w & 0xFFFF)
    cdef Py_ssize_t n = (w >> 16) & 0xFF
    cdef Py_ssize_t fixed
    if ident == ID_CONT or ident == ID_EMPTY:
        return False
    fixed = nsl[ident]
    if not (w >> 24) & FLAG_STACK:
        return fixed > 0 and n == fixed
    return fixed > 0 and fixed < n <= fixed + stk[ident]


cdef inline int64_t _ns(uint64_t tsc, int64_t tsc_base, double ns_per_tick, bint exact) noexcept nogil:
    """A timestamp in ns since the trace's base, as numpy's int64 -> float64 -> int64 gives."""
    cdef int64_t t = <int64_t>(tsc - <uint64_t>tsc_base)
    cdef double d
    if exact:
        return t
    d = <double>t * ns_per_tick
    # out of range: what numpy's cast gives on x86 (INT64_MIN), not C's undefined behaviour
    return <int64_t>d if -9.2e18 < d < 9.2e18 else (-0x7FFFFFFFFFFFFFFF - 1)
