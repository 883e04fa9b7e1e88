#include "core/sched.hh"

#include "core/panic.hh"
#include "core/percpu.hh"
#include "core/sampler.hh"
#include "core/sched_impl.hh"
#include "core/timer.hh"
#include "cpu.hh"
#include "generated/tracepoints.hh"
#include "interrupts.hh"
#include "lapic.hh"
#include "paging.hh"
#include "tsc.hh"

namespace sched::impl {

void publish_queued(cpu* c) { c->nr_queued.store(uint32_t(c->runqueue.size()), std::memory_order_relaxed); }

// c is this CPU; interrupts off; t is switched out (or new).
void enqueue_local(cpu* c, thread* t)
{
    t->state.store(thread_state::runnable, std::memory_order_relaxed);
    c->runqueue.push_back(t);
    publish_queued(c);
}

void send_ipi(cpu* target, uint8_t vector)
{
    trace_sched_ipi(uint16_t(target->id), vector);
    lapic::send_ipi(target->apic_id, vector);
}

// Hands t to another CPU (its home already says so). Interrupts off. One IPI
// per batch: only the push that finds the queue empty sends one, and the
// handler takes everything queued by then.
void push_remote(cpu* target, thread* t)
{
    target->nr_incoming.fetch_add(1, std::memory_order_relaxed);
    // A target polling its queue sees the push without an interrupt. Dekker
    // with idle_loop: push, then read `polling` here; there it clears
    // `polling`, then looks at the queue (both seq_cst): one side sees the other.
    if (target->incoming.push(t)) {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (!target->polling.load(std::memory_order_seq_cst)) {
            send_ipi(target, arch::vec_wakeup);
        }
    }
}

// Takes this CPU's incoming threads into its run queue. Interrupts off.
void drain_incoming(cpu* c)
{
    while (thread* t = c->incoming.pop()) {
        c->nr_incoming.fetch_sub(1, std::memory_order_relaxed);
        if (t == c->current) {
            // Woken in its wait window, before it got to switch away: it
            // simply keeps running (schedule() sees the state and returns).
            t->state.store(thread_state::running, std::memory_order_relaxed);
        } else {
            enqueue_local(c, t);
        }
    }
}

}  // namespace sched::impl

namespace {

using namespace sched::impl;

// Runs on the incoming thread right after every switch, with interrupts off.
// Only now is prev's stack free: a dead thread can be handed to its joiner.
void finish_switch(thread* prev)
{
    if (prev->state.load(std::memory_order_relaxed) == thread_state::dead) {
        threads::finish_dead(prev);
    } else {
        prev->on_cpu.store(false, std::memory_order_release);
    }
}


}  // namespace

// Where every new thread starts (via thread_trampoline in switch.S).
extern "C" [[noreturn]] void thread_start(thread* prev, thread* self)
{
    finish_switch(prev);
    arch::irq_enable();
    self->entry(self->arg);
    threads::exit();
}

namespace sched {

void init_cpu(cpu* c)
{
    c->need_resched = false;
    c->preempt_disabled = 0;
    c->slice_end = 0;
    c->programmed = 0;
    c->tlb_gen = paging::tlb_generation();
    init_balance();
}

void prepare_wait(thread_state why)
{
    // seq_cst: the store must be visible before the caller re-reads its
    // condition (the waker writes the condition, then reads this state).
    current_thread()->state.store(why, std::memory_order_seq_cst);
}

void cancel_wait()
{
    thread* t = current_thread();
    thread_state s = t->state.load(std::memory_order_relaxed);
    if ((s == thread_state::waiting || s == thread_state::sleeping) &&
        t->state.compare_exchange_strong(s, thread_state::running, std::memory_order_seq_cst)) {
        return;
    }
    // A waker got there first: its wake-up is queued (or about to be) on this
    // CPU and must be consumed here, or it would hit a later wait.
    schedule(thread_state::waiting);
}

void block(const void* obj)
{
    current_thread()->wait_obj = obj;  // debugging aid (thread.hh)
    trace_sched_wait(obj);
    schedule(thread_state::waiting);
}

void schedule(thread_state why)
{
    cpu* c = this_cpu();
    thread* prev = c->current;
    if (prev == c->idle && why != thread_state::runnable) {
        panic("sched: the idle thread of CPU %u may not block", c->id);
    }
    c->need_resched = false;
    drain_incoming(c);
    if (c->need_balance.load(std::memory_order_relaxed)) {
        balance(c);  // before prev joins the queue: it must not be migrated mid-switch
    }
    if (why == thread_state::waiting || why == thread_state::sleeping) {
        thread_state s = prev->state.load(std::memory_order_seq_cst);
        if (s == thread_state::waking) {
            drain_incoming(c);  // the waker's push has usually landed by now
            s = prev->state.load(std::memory_order_seq_cst);
        }
        if (s == thread_state::running) {
            return;  // woken before it could block: keep running
        }
        // waiting/sleeping: blocks. waking: its wake-up is still in flight to
        // this CPU; the drain that takes it will queue this thread.
    } else if (why == thread_state::runnable) {
        if (prev != c->idle) {
            enqueue_local(c, prev);
        }
    } else {
        prev->state.store(thread_state::dead, std::memory_order_relaxed);
    }
    thread* next = c->runqueue.pop_front();
    publish_queued(c);
    if (!next) {
        next = c->idle;
    }
    if (next == prev) {
        prev->state.store(thread_state::running, std::memory_order_relaxed);
        timers::start_slice(c, prev != c->idle);
        return;
    }
    if (prev->stack && *static_cast<uint64_t*>(prev->stack) != stack_canary) {
        panic("thread %u (%s) overflowed its %zu-byte stack", prev->id, prev->name, prev->stack_size);
    }
    // On the outgoing thread, before the switch: the record's tid is prev.
    trace_sched_switch(next->id, uint8_t(why));
    next->state.store(thread_state::running, std::memory_order_relaxed);
    next->on_cpu.store(true, std::memory_order_relaxed);
    next->nr_switches_in++;
    {
        // Debugging aid (thread.hh): CPU time and last switch, for gdb only.
        const uint64_t now = tsc::now();
        prev->run_tsc += prev->switched_tsc ? now - prev->switched_tsc : 0;
        prev->switched_tsc = now;
        next->switched_tsc = now;
    }
    c->current = next;
    c->current_tid = next->id;
    c->nr_switches++;
    c->idle_now.store(next == c->idle, std::memory_order_relaxed);
    paging::sync_tlb(c);
    timers::start_slice(c, next != c->idle);
    thread* from = arch_switch(prev, next);
    finish_switch(from);
}

void yield()
{
    irq_guard g;
    schedule(thread_state::runnable);
}

// NOTE: every waker stored its condition (a flag, the mutex's hand-off) just
// before this, and the first thing here is a load of the thread's state,
// which x86 lets pass that earlier store. The waiter does the mirror image
// (prepare_wait() stores `waiting`, then re-tests its condition). Without a
// full fence between the waker's store and this load both sides can read the
// old value: the waiter sleeps on a condition it did not see set, wake() sees
// it still running and does nothing, and it never runs again (seen under
// multi-threaded TCG: the mutex app hung in about 1 of 5 runs on 2 vCPUs).
bool wake(thread* t)
{
    std::atomic_thread_fence(std::memory_order_seq_cst);
    thread_state s = t->state.load(std::memory_order_relaxed);
    do {
        if (s != thread_state::waiting && s != thread_state::sleeping) {
            return false;
        }
    } while (!t->state.compare_exchange_weak(s, thread_state::waking, std::memory_order_seq_cst,
                                             std::memory_order_relaxed));
    // Ours to deliver now: exactly one delivery per successful CAS.
    irq_guard g;
    cpu* c = this_cpu();
    cpu* home = t->home;
    // Wake-time balancing: a thread whose home is busy goes to an idle CPU
    // instead, if it is off its CPU for good (thread.hh: on_cpu).
    if (!t->pinned && !home->idle_now.load(std::memory_order_relaxed) &&
        !t->on_cpu.load(std::memory_order_acquire)) {
        if (cpu* idle = find_idle(home, nullptr)) {
            rehome(t, home, idle);
            home = idle;
        }
    }
    trace_sched_wake(t->id, uint16_t(home->id));
    if (home != c) {
        push_remote(home, t);
    } else if (t == c->current) {
        t->state.store(thread_state::running, std::memory_order_relaxed);  // woke itself in its window
    } else {
        enqueue_local(c, t);
    }
    return true;
}

void start_on(thread* t, cpu* target)
{
    irq_guard g;
    target->nr_homed.fetch_add(1, std::memory_order_relaxed);
    t->home = target;
    if (target == this_cpu()) {
        enqueue_local(target, t);
    } else {
        t->state.store(thread_state::runnable, std::memory_order_relaxed);
        push_remote(target, t);
    }
}

void on_wakeup_ipi() { drain_incoming(this_cpu()); }

void request_resched(cpu* c) { c->need_resched = true; }

void on_interrupt_exit()
{
    cpu* c = this_cpu();
    if (c->need_balance.load(std::memory_order_relaxed) && !c->preempt_disabled) {
        balance(c);
    }
    // The idle thread is not preempted: its loop looks at the run queue as
    // soon as the interrupt returns from its hlt.
    if (c->need_resched && !c->preempt_disabled && c->current != c->idle) {
        schedule(thread_state::runnable);
    }
}

void preempt_disable()
{
    this_cpu()->preempt_disabled++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

void preempt_enable()
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    irq_guard g;
    cpu* c = this_cpu();
    if (--c->preempt_disabled == 0 && c->need_resched) {
        schedule(thread_state::runnable);
    }
}

uint64_t total_switches()
{
    uint64_t n = 0;
    const unsigned cnt = online_cpus();
    for (unsigned i = 0; i < cnt; i++) {
        n += __atomic_load_n(&cpus[i]->nr_switches, __ATOMIC_RELAXED);
    }
    return n;
}

namespace {
uint64_t idle_poll_ticks;  // 0: halt at once
}

void set_idle_poll_us(uint64_t us) { idle_poll_ticks = tsc::from_ns(us * 1000); }

uint64_t idle_poll_window() { return online_cpus() > 1 ? idle_poll_ticks : 0; }

// Something for the idle loop to run: threads handed over by other CPUs, or
// threads queued here (an interrupt handler's wake-up of a thread homed on
// this CPU, a timer's for instance, goes straight to the run queue).
static bool has_work(cpu* c) { return !c->incoming.empty() || !c->runqueue.empty(); }

// Polls with interrupts on for up to idle_poll_ticks, until there is work.
// Returns with interrupts off and `polling` clear. It does not say whether
// work came: an interrupt taken after the loop's last look (between it and
// the `cli`) can queue a thread here, so the caller looks again.
static void idle_poll(cpu* c)
{
    if (!idle_poll_ticks || online_cpus() == 1) {
        return;
    }
    c->polling.store(true, std::memory_order_seq_cst);
    arch::irq_enable();
    const uint64_t end = tsc::now() + idle_poll_ticks;
    for (unsigned i = 1;; i++) {
        if (has_work(c) || c->need_resched) {
            break;
        }
        // The clock is read every 64 turns: under TCG each rdtsc takes a
        // global lock that the other vCPUs' tracepoints also take.
        if (!(i & 63) && tsc::now() > end) {
            break;
        }
        arch::cpu_relax();
    }
    arch::irq_disable();
    c->polling.store(false, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // the store before the caller's look at the queue
}

void idle_loop()
{
    cpu* c = this_cpu();
    sampler::start_cpu();
    for (;;) {
        arch::irq_disable();
        drain_incoming(c);
        if (!c->runqueue.empty()) {
            schedule(thread_state::runnable);
            continue;
        }
        if (online_cpus() > 1) {
            request_work(c);
        }
        trace_sched_idle();
        idle_poll(c);
        // Interrupts are off and `polling` is clear: a push from now on sends
        // an IPI. Both queues are looked at here, not only `incoming`: the
        // poll ran with interrupts on, and a handler taken after its last
        // look may have queued a thread on the run queue itself (a timer
        // waking a thread homed here); halting then would leave that thread
        // queued with nothing left to end the hlt.
        if (!has_work(c)) {
            // NOTE: no wake-up is missed by halting here: a push onto
            // `incoming` after the check above sent an IPI, which is pending
            // (interrupts are off) and ends the hlt at once.
            arch::enable_and_halt();
        }
        trace_sched_idle_ret();
    }
}

}  // namespace sched
