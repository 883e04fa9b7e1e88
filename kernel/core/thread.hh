// Kernel threads: the only unit of execution (one address space, no
// processes). Ids are small, dense and start at 1, so they index the trace
// runtime's thread table (osvtrace_control.threads_addr) directly.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/timer.hh"
#include "core/waitqueue.hh"

struct cpu;

// Values match the trace schema's thread_state enum (tracepoints/sched.toml).
enum class thread_state : uint8_t {
    running = 0,
    runnable = 1,
    waiting = 2,   // on a wait queue
    sleeping = 3,  // on a timer
    dead = 4,
};

constexpr size_t thread_name_max = 23;
constexpr uint32_t threads_max = 1024;  // tids 1 .. threads_max-1
constexpr size_t default_stack_size = 64 * 1024;
// Written at the lowest word of every stack; the scheduler checks it when a
// thread switches out. Stacks also have an absent guard page below them; the
// canary catches what jumps over the guard (a frame larger than a page).
constexpr uint64_t stack_canary = 0x5354414b43414e59ull;

struct thread {
    uint64_t saved_rsp;  // NOTE: first member: switch.S stores and loads it at offset 0
    uint32_t id;
    thread_state state;
    bool on_cpu;    // a CPU runs it or is still switching away from it (not reapable)
    bool detached;  // reaped by the scheduler at exit instead of by join()
    char name[thread_name_max + 1];
    cpu* home;  // the CPU whose run queue takes it when it becomes runnable
    list_node rq_node;
    void* stack;
    size_t stack_size;
    void (*entry)(void*);
    void* arg;
    waitqueue joiners;
    timer sleep_timer;
};
static_assert(__builtin_offsetof(thread, saved_rsp) == 0, "switch.S relies on saved_rsp at 0");

inline list_node* thread_rq_link::node(thread* t) { return &t->rq_node; }
inline thread* thread_rq_link::owner(list_node* n)
{
    return reinterpret_cast<thread*>(reinterpret_cast<char*>(n) - __builtin_offsetof(thread, rq_node));
}

namespace threads {

// A new runnable thread on this CPU. stack_size 0: default_stack_size.
// Returns nullptr when memory or thread ids run out.
thread* create(const char* name, void (*entry)(void*), void* arg, size_t stack_size = 0);

[[noreturn]] void exit();

// Waits for t to exit, then frees it. Each thread is joined once, or detached.
void join(thread* t);
void detach(thread* t);

void sleep_ns(uint64_t ns);
void yield();

thread* current();
thread* by_id(uint32_t tid);  // nullptr if no such live thread

// The thread whose stack (or the guard page below it) contains addr.
thread* owning_stack(uint64_t addr);

// Boot: the boot context becomes this CPU's idle thread (it owns the boot stack).
thread* adopt_boot_context(cpu* c, const char* name, void* stack, size_t stack_size);

// Frees a dead thread that nobody will join (called by the scheduler).
void reap(thread* t);

}  // namespace threads
