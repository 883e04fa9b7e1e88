#include "core/thread.hh"

#include "core/heap.hh"
#include "core/page_alloc.hh"
#include "core/panic.hh"
#include "core/percpu.hh"
#include "core/sched.hh"
#include "core/trace.hh"
#include "generated/tracepoints.hh"
#include "lib/string.hh"
#include "paging.hh"
#include "tsc.hh"

namespace threads {
namespace {

// NOTE: objects are reused, never freed (see thread.hh). pool[id] is the
// thread with that id; table[id] points at it while the id is taken (gdb's
// `osv info threads` walks table[]).
thread pool[threads_max];
std::atomic<thread*> table[threads_max];  // index == tid; 0 is never used
std::atomic<uint32_t> last_tid;

// Dead detached threads, waiting for the next create() to free their stacks
// (the scheduler, which finds them, must not block, and freeing may).
std::atomic<thread*> zombies;

// Ids grow and wrap around past the end, so a trace rarely sees one id on two
// threads; a wrapped id reuses a slot freed by a reaped thread. A CAS claims
// the slot, so concurrent creators never share one.
uint32_t alloc_tid()
{
    uint32_t start = last_tid.load(std::memory_order_relaxed);
    for (uint32_t k = 1; k < threads_max; k++) {
        uint32_t id = (start + k) % threads_max;
        thread* expected = nullptr;
        if (id != 0 && table[id].compare_exchange_strong(expected, &pool[id], std::memory_order_acq_rel)) {
            last_tid.store(id, std::memory_order_relaxed);
            return id;
        }
    }
    return 0;
}

void set_name(thread* t, const char* name)
{
    memset(t->name, 0, sizeof t->name);
    strlcpy(t->name, name ? name : "?", sizeof t->name);
}

void free_stack(void* stack, size_t size)
{
    char* base = static_cast<char*>(stack) - pages::page_size;
    paging::set_guard(reinterpret_cast<uint64_t>(base), false);
    pages::free(base, size / pages::page_size + 1);
}

void sleep_timer_fired(timer* tm) { sched::wake(static_cast<thread*>(tm->arg)); }

// Every field but the state, which stays dead (or zero) until the caller
// publishes the thread: a stale waker's CAS must keep failing meanwhile.
void init_common(thread* t, uint32_t id, const char* name, cpu* home)
{
    t->id = id;
    t->on_cpu.store(false, std::memory_order_relaxed);
    t->pinned = false;
    set_name(t, name);
    t->home = home;
    t->rq_node = list_node{};
    t->wake_next = nullptr;
    t->zombie_next = nullptr;
    t->join_word.store(0, std::memory_order_relaxed);
    t->sleep_timer.node = list_node{};
    t->sleep_timer.fn = sleep_timer_fired;
    t->sleep_timer.arg = t;
    t->sleep_timer.owner = nullptr;
    t->nr_switches_in = 0;
    t->wait_obj = nullptr;
    t->switched_tsc = 0;
    t->run_tsc = 0;
}

void reap(thread* t)
{
    free_stack(t->stack, t->stack_size);
    t->stack = nullptr;
    // Last: from here on the id (and the object) may be taken again.
    table[t->id].store(nullptr, std::memory_order_release);
}

void reap_zombies()
{
    thread* z = zombies.exchange(nullptr, std::memory_order_acquire);
    while (z) {
        thread* next = z->zombie_next;
        reap(z);
        z = next;
    }
}

}  // namespace

void* alloc_stack(size_t size)
{
    auto* base = static_cast<char*>(pages::alloc(size / pages::page_size + 1));
    if (!base) {
        return nullptr;
    }
    if (!paging::set_guard(reinterpret_cast<uint64_t>(base), true)) {
        pages::free(base, size / pages::page_size + 1);
        return nullptr;
    }
    return base + pages::page_size;
}

namespace {

// pin_cpu < 0: placed by the scheduler; else on that CPU for good.
thread* create_thread(const char* name, void (*entry)(void*), void* arg, size_t stack_size, int pin_cpu)
{
    reap_zombies();
    if (!stack_size) {
        stack_size = default_stack_size;
    }
    stack_size = pages::pages_for(stack_size) * pages::page_size;
    void* stack = alloc_stack(stack_size);
    if (!stack) {
        return nullptr;
    }
    uint32_t id = alloc_tid();
    if (!id) {
        free_stack(stack, stack_size);
        return nullptr;
    }
    thread* t = &pool[id];
    init_common(t, id, name, this_cpu());
    t->stack = stack;
    t->stack_size = stack_size;
    t->entry = entry;
    t->arg = arg;
    *static_cast<uint64_t*>(stack) = stack_canary;

    // The frame arch_switch pops on first switch-in: r15 r14 r13 r12 rbx rbp,
    // then the return address. Its "ret" lands in thread_trampoline with rsp
    // 16-byte aligned, as a call expects. r12 carries the thread, rbp = 0
    // ends backtraces.
    auto* top = reinterpret_cast<uint64_t*>(static_cast<char*>(stack) + stack_size);
    uint64_t* sp = top - 7;
    sp[0] = 0;                                              // r15
    sp[1] = 0;                                              // r14
    sp[2] = 0;                                              // r13
    sp[3] = reinterpret_cast<uint64_t>(t);                  // r12
    sp[4] = 0;                                              // rbx
    sp[5] = 0;                                              // rbp
    sp[6] = reinterpret_cast<uint64_t>(thread_trampoline);  // return address
    t->saved_rsp = reinterpret_cast<uint64_t>(sp);

    trace_rt::thread_started(t->id, t->name);
    trace_thread_create(t->id, t->name);
    if (pin_cpu >= 0) {
        t->pinned = true;
        sched::start_on(t, cpus[unsigned(pin_cpu) % online_cpus()]);
    } else {
        sched::start(t);
    }
    return t;
}

}  // namespace

thread* create(const char* name, void (*entry)(void*), void* arg, size_t stack_size)
{
    return create_thread(name, entry, arg, stack_size, -1);
}

thread* create_on(unsigned cpu_id, const char* name, void (*entry)(void*), void* arg, size_t stack_size)
{
    return create_thread(name, entry, arg, stack_size, int(cpu_id % max_cpus));
}

thread* adopt_boot_context(cpu* c, const char* name, void* stack, size_t stack_size)
{
    uint32_t id = alloc_tid();
    if (!id) {
        panic("threads: no thread id for %s", name);
    }
    thread* t = &pool[id];
    init_common(t, id, name, c);
    t->state.store(thread_state::running, std::memory_order_relaxed);
    t->on_cpu.store(true, std::memory_order_relaxed);
    t->pinned = true;
    t->stack = stack;
    t->stack_size = stack_size;
    *static_cast<uint64_t*>(stack) = stack_canary;
    c->current = t;
    c->current_tid = t->id;
    trace_rt::thread_started(t->id, t->name);
    return t;
}

void exit()
{
    arch::irq_disable();
    thread* t = current_thread();
    trace_thread_exit();
    trace_rt::thread_exited(t->id);
    timers::cancel(&t->sleep_timer);
    sched::schedule(thread_state::dead);
    panic("threads: dead thread %u resumed", t->id);
}

void finish_dead(thread* t)
{
    t->home->nr_homed.fetch_sub(1, std::memory_order_relaxed);
    t->on_cpu.store(false, std::memory_order_release);
    // NOTE: the last touch of t by the scheduler; once join_done is visible a
    // joiner may reap it (the object itself stays valid, see thread.hh).
    uintptr_t w = t->join_word.exchange(join_done, std::memory_order_acq_rel);
    if (w == join_detached) {
        thread* old = zombies.load(std::memory_order_relaxed);
        do {
            t->zombie_next = old;
        } while (!zombies.compare_exchange_weak(old, t, std::memory_order_release, std::memory_order_relaxed));
    } else if (w != 0) {
        sched::wake(reinterpret_cast<thread*>(w));
    }
}

void join(thread* t)
{
    thread* self = current_thread();
    if (t == self) {
        panic("threads: thread %u joins itself", t->id);
    }
    uintptr_t expected = 0;
    if (t->join_word.compare_exchange_strong(expected, reinterpret_cast<uintptr_t>(self),
                                             std::memory_order_acq_rel)) {
        sched::wait_for([t] { return t->join_word.load(std::memory_order_acquire) == join_done; }, t);
    } else if (expected != join_done) {
        panic("threads: thread %u joined twice or after detach", t->id);
    }
    reap(t);
}

void detach(thread* t)
{
    uintptr_t w = t->join_word.exchange(join_detached, std::memory_order_acq_rel);
    if (w == join_done) {
        reap(t);  // already gone: nobody else will free it
    } else if (w != 0) {
        panic("threads: thread %u detached while being joined", t->id);
    }
}

void sleep_ns(uint64_t ns)
{
    thread* t = current_thread();
    irq_guard g;
    timers::arm(&t->sleep_timer, tsc::now() + tsc::from_ns(ns));
    t->wait_obj = &t->sleep_timer;  // debugging aid (thread.hh)
    trace_sched_wait(&t->sleep_timer);
    sched::prepare_wait(thread_state::sleeping);
    sched::schedule(thread_state::sleeping);
}

void yield() { sched::yield(); }

thread* current() { return current_thread(); }

thread* owning_stack(uint64_t addr)
{
    for (uint32_t id = 1; id < threads_max; id++) {
        thread* t = table[id].load(std::memory_order_acquire);
        uint64_t lo = reinterpret_cast<uint64_t>(t ? t->stack : nullptr);
        if (t && lo && addr >= lo - pages::page_size && addr < lo + t->stack_size) {
            return t;
        }
    }
    return nullptr;
}

thread* by_id(uint32_t tid) { return tid < threads_max ? table[tid].load(std::memory_order_acquire) : nullptr; }

}  // namespace threads

// Debugging aid: gdb (osvtrace/gdb/threads.py) finds the thread table by this
// name, whatever namespace the table itself lives in.
extern "C" std::atomic<thread*>* const osvtrace_thread_table = threads::table;
