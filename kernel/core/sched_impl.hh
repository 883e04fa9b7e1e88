// Internals shared by the scheduler (sched.cc) and the load balancer
// (balance.cc). Everything here runs with interrupts off, on the CPU named
// `c` (this CPU) unless a comment says otherwise.
#pragma once

#include <stdint.h>

struct cpu;
struct thread;

namespace sched::impl {

void publish_queued(cpu* c);              // c->nr_queued = its run queue's length
void enqueue_local(cpu* c, thread* t);    // t (switched out or new) onto c's run queue
void send_ipi(cpu* target, uint8_t vector);
void push_remote(cpu* target, thread* t); // onto another CPU's incoming queue (+ IPI)

// balance.cc
void init_balance();
uint32_t load(cpu* c);                    // any CPU: threads running or on their way to run
void rehome(thread* t, cpu* from, cpu* to);
cpu* find_idle(cpu* from, cpu* not_this); // any CPU
void balance(cpu* c);
void request_work(cpu* c);

}  // namespace sched::impl
