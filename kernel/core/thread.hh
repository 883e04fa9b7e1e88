// Kernel threads: the only unit of execution (one address space, no
// processes). Ids are small, dense and start at 1, so they index the trace
// runtime's thread table (osvtrace_control.threads_addr) directly.
//
// NOTE: thread objects live in a static array indexed by id and are never
// freed, only reused. A waker that lost a race (it read a thread pointer,
// then the thread exited) can still touch the object safely: its state CAS
// fails on a dead thread, or gives a reused one a spurious wake-up, which
// every wait tolerates (waits re-test their condition). This is what lets
// the lock-free mutex and condvar wake a thread after its wait record is gone.
#pragma once

#include <atomic>
#include <stddef.h>
#include <stdint.h>

#include "core/timer.hh"
#include "lib/list.hh"

struct cpu;

// Values 0..4 match the trace schema's thread_state enum (tracepoints/sched.toml).
enum class thread_state : uint8_t {
    running = 0,
    runnable = 1,  // on a run queue (or on its way to one)
    waiting = 2,   // announced a wait (sched::prepare_wait), or blocked in it
    sleeping = 3,  // on a timer
    dead = 4,
    waking = 5,  // woken; its home CPU has yet to take it from its wake-up queue
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
    // NOTE: changed by CAS where a waker races the thread (waiting/sleeping ->
    // waking); otherwise by the thread's home CPU with interrupts off.
    std::atomic<thread_state> state;
    // A CPU runs it or is still switching away from it. NOTE: once a waker
    // that won the CAS to waking sees it false, the thread is off its CPU for
    // good and the waker may deliver it to any CPU.
    std::atomic<bool> on_cpu;
    bool pinned;  // never migrated by load balancing
    char name[thread_name_max + 1];
    // The CPU whose run queue takes it. NOTE: changes only while the thread
    // sits on that CPU's run queue (migration, by that CPU), so whoever wakes
    // a waiting thread reads a stable value.
    cpu* home;
    list_node rq_node;        // on home's run queue
    thread* wake_next;        // on a CPU's wake-up queue (sched.cc)
    thread* zombie_next;      // on the list of dead detached threads
    // 0; a joiner's thread*; join_done once it is off its CPU for good; or
    // join_detached. One word, so exit, join and detach race safely.
    std::atomic<uintptr_t> join_word;
    void* stack;
    size_t stack_size;
    void (*entry)(void*);
    void* arg;
    timer sleep_timer;
    uint64_t nr_switches_in;  // times switched in (lhp uses it to spot preempted holders)

    // Debugging aids: written by the scheduler, read only by gdb (osvtrace/gdb/
    // threads.py: `osv info threads` shows the wait object, last ran, CPU time).
    const void* wait_obj;   // what it last blocked on (sched::block's obj, its sleep timer)
    uint64_t switched_tsc;  // TSC of its last switch in or out; 0: never ran
    uint64_t run_tsc;       // TSC ticks on a CPU, up to its last switch out
};
static_assert(__builtin_offsetof(thread, saved_rsp) == 0, "switch.S relies on saved_rsp at 0");
static_assert(sizeof(std::atomic<thread_state>) == 1, "gdb reads thread::state as one byte");
static_assert(sizeof(std::atomic<bool>) == 1, "gdb reads thread::on_cpu as one byte");

constexpr uintptr_t join_done = 1;
constexpr uintptr_t join_detached = 2;

struct thread_rq_link {
    static list_node* node(thread* t) { return &t->rq_node; }
    static thread* owner(list_node* n)
    {
        return reinterpret_cast<thread*>(reinterpret_cast<char*>(n) - __builtin_offsetof(thread, rq_node));
    }
};
using thread_list = intrusive_list<thread, thread_rq_link>;

namespace threads {

// A new runnable thread, placed on the least loaded CPU. stack_size 0:
// default_stack_size. Returns nullptr when memory or thread ids run out.
// Thread context only (it allocates).
thread* create(const char* name, void (*entry)(void*), void* arg, size_t stack_size = 0);

// Like create, but the thread runs on CPU `cpu_id` (modulo the CPUs online)
// and is never migrated: for benchmarks that need two threads on one CPU, or
// on two.
thread* create_on(unsigned cpu_id, const char* name, void (*entry)(void*), void* arg, size_t stack_size = 0);

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

// Boot: a CPU's boot context becomes its idle thread (owning the given stack).
thread* adopt_boot_context(cpu* c, const char* name, void* stack, size_t stack_size);

// A stack with an absent guard page below it (also for the APs' idle threads).
void* alloc_stack(size_t size);

// Called by the scheduler right after a dead thread left its CPU for good
// (interrupts off, must not block): wakes the joiner or queues the thread
// for reaping.
void finish_dead(thread* t);

}  // namespace threads
