#include "core/trace.hh"

#include "core/console.hh"
#include "core/klog.hh"
#include "core/page_alloc.hh"
#include "core/percpu.hh"
#include "core/thread.hh"
#include "generated/tracepoints.hh"
#include "lib/glob.hh"
#include "lib/string.hh"
#include "trace/control.hh"

// gdb flips these bytes at run time; the generated emitters read them on
// every call (volatile), so no code patching is needed.
// Emitters read enabled[] only: 0 off, 1 on, 2 on with the record's stack. backtrace[]
// remembers which stacks were asked for; set_flags and set_backtrace keep enabled[] in step.
volatile uint8_t trace::enabled[trace::tp_max + 1];
volatile uint8_t trace::backtrace[trace::tp_max + 1];

// The walk's bounds (include/trace/stack.hh): the running thread's stack. Interrupts
// run on it too (arch/x64/isr.S), so the sampler's walk stays inside it as well.
void trace_platform::stack_bounds(uint64_t* lo, uint64_t* hi)
{
    const thread* t = this_cpu()->current;
    if (!t || !t->stack) {
        *lo = *hi = 0;  // nothing to walk: the walk stops at its first frame
        return;
    }
    *lo = reinterpret_cast<uint64_t>(t->stack);
    *hi = *lo + t->stack_size;
}

extern "C" {
// NOTE: the one symbol host tools look up (gdb, pyelftools); layout in control.hh.
trace::control osvtrace_control __attribute__((used, aligned(64)));
}

namespace trace_rt {
namespace {

trace::thread_entry thread_table[threads_max];
trace::ring rings[trace::max_cpus];
uint32_t names_gen;
static_assert(threads_max <= 65536, "thread ids are u32 but the table must stay small");
static_assert(trace::max_cpus == max_cpus, "per-CPU limits agree");

}  // namespace

void early_init(const char* cmdline, const char* build_id)
{
    trace::control& c = osvtrace_control;
    c.version = trace::control_version;
    c.ncpus = 0;
    c.enabled_addr = reinterpret_cast<uint64_t>(&trace::enabled[0]);
    c.tp_max = trace::tp_max;
    c.slot_size = trace::slot_size;
    c.threads_addr = reinterpret_cast<uint64_t>(thread_table);
    c.threads_max = threads_max;
    c.log_size = klog::size;
    c.log_addr = reinterpret_cast<uint64_t>(klog::ring);
    c.cmdline_addr = reinterpret_cast<uint64_t>(cmdline);
    c.build_id_addr = reinterpret_cast<uint64_t>(build_id);
    c.backtrace_addr = reinterpret_cast<uint64_t>(&trace::backtrace[0]);
}

void set_sampler_hz(uint32_t hz) { osvtrace_control.sampler_hz = hz; }

uint64_t ring_bytes_for(uint64_t requested)
{
    if (requested < min_buf_bytes || requested > max_buf_bytes) {
        return 0;
    }
    uint64_t b = min_buf_bytes;
    while (b < requested) {
        b <<= 1;
    }
    return b;
}

namespace {

bool takes_stack(const trace::tp_desc& d) { return d.stack == trace::stack_optional; }

// enabled[id] says both whether a tracepoint is on and whether its records carry their
// stack (2), so that the emitters read one byte (generated/tracepoints.hh, level()).
void sync_enabled(const trace::tp_desc& d, bool on)
{
    trace::enabled[d.id] = !on ? 0 : (takes_stack(d) && trace::backtrace[d.id]) ? 2 : 1;
}

// Sets flags[id] for every tracepoint one of the globs matches and `takes` accepts, then
// brings its enabled byte in step.
int set_matching(volatile uint8_t* flags, bool (*takes)(const trace::tp_desc&), const char* what, const char* globs,
                 size_t len, uint8_t value, char* err, size_t errlen)
{
    for (int pass = 0; pass < 2; pass++) {  // check every glob first, then apply
        int matched = 0;
        size_t i = 0;
        while (i <= len) {
            size_t j = i;
            while (j < len && globs[j] != ',') {
                j++;
            }
            const char* pat = globs + i;
            size_t plen = j - i;
            if (plen) {
                int m = 0;
                for (const trace::tp_desc& d : trace::tp_table) {
                    if (takes(d) && glob_match(pat, plen, d.name)) {
                        if (pass == 1) {
                            flags[d.id] = value;
                            sync_enabled(d, trace::enabled[d.id] != 0);
                        }
                        m++;
                    }
                }
                if (!m) {
                    snprintf(err, errlen, "'%.*s' matches no %s (globs are anchored: try '%.*s*')",
                             int(plen), pat, what, int(plen), pat);
                    return -1;
                }
                matched += m;
            }
            i = j + 1;
        }
        if (pass == 1) {
            return matched;
        }
    }
    return 0;
}

bool any(const trace::tp_desc&) { return true; }

}  // namespace

int set_flags(const char* globs, size_t len, uint8_t value, char* err, size_t errlen)
{
    return set_matching(trace::enabled, any, "tracepoint", globs, len, value, err, errlen);
}

int set_backtrace(const char* globs, size_t len, uint8_t value, char* err, size_t errlen)
{
    return set_matching(trace::backtrace, takes_stack, "tracepoint that takes a stack", globs, len, value, err, errlen);
}

namespace {

// A boot option's globs (trace=, tracebt=): set, or the refusal printed under its name.
bool boot_globs(int (*set)(const char*, size_t, uint8_t, char*, size_t), const char* option, const char* globs,
                size_t len)
{
    char err[160];
    if (set(globs, len, 1, err, sizeof err) < 0) {
        kprintf("%s: %s\n", option, err);
        return false;
    }
    return true;
}

}  // namespace

bool backtrace_globs(const char* globs, size_t len) { return boot_globs(set_backtrace, "tracebt", globs, len); }

bool enable_globs(const char* globs, size_t len) { return boot_globs(set_flags, "trace", globs, len); }

bool init_cpu(cpu* c, uint64_t ring_bytes, trace::ring_mode mode, int64_t tsc_offset)
{
    void* slots = pages::alloc(ring_bytes / pages::page_size);
    if (!slots) {
        kprintf("trace: no memory for a %lu KiB ring on CPU %u\n", ring_bytes >> 10, c->id);
        return false;
    }
    // Zeroed: a reader tells never-written slots by their id (trace::id_empty).
    memset(slots, 0, ring_bytes);
    trace::ring* r = &rings[c->id];
    r->cpu = c->id;
    r->mode = mode;
    r->nslots = ring_bytes / trace::slot_size;
    r->mask = r->nslots - 1;
    r->slots_addr = reinterpret_cast<uint64_t>(slots);
    r->head = 0;
    r->committed = 0;
    r->lost = 0;
    r->pending_lost = 0;
    r->tail = 0;
    __atomic_store_n(&r->magic, trace::ring_magic, __ATOMIC_RELEASE);
    osvtrace_control.rings[c->id] = reinterpret_cast<uint64_t>(r);
    osvtrace_control.tsc_offset[c->id] = tsc_offset;  // measured at bring-up (arch/x64/tsc_sync.hh)
    // NOTE: CPUs come up in id order, one at a time (core/smp.cc): the ring
    // and offset are in place before ncpus covers them.
    if (c->id + 1 > osvtrace_control.ncpus) {
        __atomic_store_n(&osvtrace_control.ncpus, c->id + 1, __ATOMIC_RELEASE);
    }
    // Last: from now on this CPU's tracepoints write into the ring.
    __atomic_store_n(&c->ring, r, __ATOMIC_RELEASE);
    return true;
}

void publish(uint64_t tsc_hz, uint64_t tsc_boot)
{
    osvtrace_control.tsc_hz = tsc_hz;
    osvtrace_control.tsc_boot = tsc_boot;
    __atomic_store_n(&osvtrace_control.magic, trace::control_magic, __ATOMIC_RELEASE);
}

void thread_started(uint32_t tid, const char* name)
{
    trace::thread_entry& e = thread_table[tid];
    e.flags = 0;
    memset(e.name, 0, sizeof e.name);
    strlcpy(e.name, name, sizeof e.name);
    __atomic_store_n(&e.tid, tid, __ATOMIC_RELEASE);
    __atomic_fetch_add(&names_gen, 1, __ATOMIC_RELEASE);  // after the entry is complete
}

uint32_t names_generation() { return __atomic_load_n(&names_gen, __ATOMIC_ACQUIRE); }

void thread_exited(uint32_t tid) { thread_table[tid].flags |= 1; }

}  // namespace trace_rt
