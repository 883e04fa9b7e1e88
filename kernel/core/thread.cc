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

#include <new>

namespace threads {
namespace {

thread* table[threads_max];  // index == tid; 0 is never used
uint32_t last_tid;

// Ids grow monotonically and wrap around past the end, so a trace rarely sees
// one id on two threads; a wrapped id reuses a slot freed by a reaped thread.
uint32_t alloc_tid(thread* t)
{
    irq_guard g;
    for (uint32_t k = 1; k < threads_max; k++) {
        uint32_t id = (last_tid + k) % threads_max;
        if (id != 0 && !table[id]) {
            table[id] = t;
            last_tid = id;
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

// A stack with an absent guard page below it: an overflow faults at once
// (and is reported as such) instead of silently corrupting the memory below.
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

void free_stack(void* stack, size_t size)
{
    char* base = static_cast<char*>(stack) - pages::page_size;
    paging::set_guard(reinterpret_cast<uint64_t>(base), false);
    pages::free(base, size / pages::page_size + 1);
}

void sleep_timer_fired(timer* tm) { sched::wake(static_cast<thread*>(tm->arg)); }

void init_common(thread* t, cpu* home)
{
    t->state = thread_state::runnable;
    t->on_cpu = false;
    t->detached = false;
    t->home = home;
    t->sleep_timer.fn = sleep_timer_fired;
    t->sleep_timer.arg = t;
}

}  // namespace

thread* create(const char* name, void (*entry)(void*), void* arg, size_t stack_size)
{
    if (!stack_size) {
        stack_size = default_stack_size;
    }
    stack_size = pages::pages_for(stack_size) * pages::page_size;
    void* stack = alloc_stack(stack_size);
    if (!stack) {
        return nullptr;
    }
    void* mem = malloc(sizeof(thread));
    if (!mem) {
        free_stack(stack, stack_size);
        return nullptr;
    }
    thread* t = new (mem) thread{};
    t->id = alloc_tid(t);
    if (!t->id) {
        t->~thread();
        free(mem);
        free_stack(stack, stack_size);
        return nullptr;
    }
    set_name(t, name);
    init_common(t, this_cpu());
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
    sched::start(t);
    return t;
}

thread* adopt_boot_context(cpu* c, const char* name, void* stack, size_t stack_size)
{
    void* mem = malloc(sizeof(thread));
    if (!mem) {
        panic("threads: no memory for the boot thread");
    }
    thread* t = new (mem) thread{};
    t->id = alloc_tid(t);
    set_name(t, name);
    init_common(t, c);
    t->state = thread_state::running;
    t->on_cpu = true;
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

void reap(thread* t)
{
    {
        irq_guard g;
        table[t->id] = nullptr;
    }
    free_stack(t->stack, t->stack_size);
    t->~thread();
    free(t);
}

void join(thread* t)
{
    if (t == current_thread()) {
        panic("threads: thread %u joins itself", t->id);
    }
    t->joiners.wait_until([t] { return t->state == thread_state::dead && !t->on_cpu; });
    reap(t);
}

void detach(thread* t)
{
    irq_guard g;
    if (t->state == thread_state::dead && !t->on_cpu) {
        reap(t);  // already gone: nobody else will free it
    } else {
        t->detached = true;
    }
}

void sleep_ns(uint64_t ns)
{
    thread* t = current_thread();
    irq_guard g;
    timers::arm(&t->sleep_timer, tsc::now() + tsc::from_ns(ns));
    trace_sched_wait(&t->sleep_timer);
    sched::schedule(thread_state::sleeping);
}

void yield() { sched::yield(); }

thread* current() { return current_thread(); }

thread* owning_stack(uint64_t addr)
{
    for (uint32_t id = 1; id < threads_max; id++) {
        thread* t = table[id];
        uint64_t lo = reinterpret_cast<uint64_t>(t ? t->stack : nullptr);
        if (t && addr >= lo - pages::page_size && addr < lo + t->stack_size) {
            return t;
        }
    }
    return nullptr;
}

thread* by_id(uint32_t tid)
{
    irq_guard g;
    return tid < threads_max ? table[tid] : nullptr;
}

}  // namespace threads
