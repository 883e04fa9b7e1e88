"""Real OSv (cloudius-systems/osv): the unikernel osvtrace's users run.

Its trace buffers are a per-CPU variable (`percpu_trace_buffer`, core/trace.cc), each a ring
that overwrites silently; QEMU boots a disk image whose own loader starts the kernel, so the
command line lives in the image (scripts/imgedit.py setargs). `--trace=GLOB` takes fnmatch
patterns, one per option; `--trace-backtrace` stores 10 return addresses in every record.
"""

from osvtrace.kernels.base import From, Kernel, Pairs

# bsd/sys/net/netisr.h protocol numbers (scripts/trace.py's Protocol) and their ethertypes
NETISR_ETHER = 9
NETISR_ETHERTYPES = {1: 0x0800, 3: 0x8035, 4: 0x80F3, 7: 0x0806, 8: 0x8137, 10: 0x86DD}

KERNEL = Kernel(
    name="osv",
    title="OSv kernel",
    elf_marker="osv_version",
    trace_buffers="percpu_trace_buffer",
    boot="image",
    # osv::poweroff is where every orderly end goes; by then the app's object is unloaded, so
    # snapshots that want the app's symbols stop earlier (at elf::program::remove_object).
    # osv::halt is where abort() (a crash: "Aborted" and a backtrace on the console) and a
    # failed power-off end: the vCPUs then halt for good, and no other breakpoint comes.
    exit_breakpoints={"osv::poweroff": "app-exit", "osv::halt": "panic"},
    trace_option="--trace={}",
    trace_option_per_glob=True,
    backtrace_option="--trace-backtrace",
    backtrace_depth=10,  # include/osv/trace.hh: tracepoint_base::backtrace_len
    # OSv's tracepoints (core/sched.cc, core/lfmutex.cc, core/condvar.cc) as the model reads them.
    # Its arguments are unnamed (a0, a1 ... in signature order); threads are sched::thread pointers.
    model={
        # reschedule: a still-runnable thread records sched_preempt just before its switch;
        # one that blocks recorded sched_wait in thread::wait() first.
        "sched_switch": From(("sched_switch",), {"next": ("thread", "a0"),
                                                 "prev_state": ("left_as", ("sched_preempt",), ("sched_wait",))}),
        # wake_impl queues the thread on its own CPU (st->_cpu): the one it last ran on.
        "sched_wake": From(("sched_wake",), {"tid": ("thread", "a0"), "cpu": ("last_cpu", "a0")}),
        # sched_wait has no argument: what the thread blocks on is its last mutex/condvar/waitqueue wait.
        "sched_wait": From(("sched_wait",), {"obj": ("waits_on", ("mutex_lock_wait", "condvar_wait",
                                                                 "waitqueue_wait"), "a0", "sched_wait_ret")}),
        "sched_idle": From(("sched_idle",)),
        "sched_idle_ret": From(("sched_idle_ret",)),
        "sched_preempt": From(("sched_preempt",)),
        "sched_migrate": From(("sched_migrate",), {"tid": ("thread", "a0"), "from_cpu": ("cpu",),
                                                   "to_cpu": ("arg", "a1")}),
        "sched_ipi": From(("sched_ipi",), {"cpu": ("arg", "a0"), "vector": ("const", 0)}),
        "mutex_lock": From(("mutex_lock",), {"mutex": ("arg", "a0")}),
        "mutex_lock_wait": From(("mutex_lock_wait",), {"mutex": ("arg", "a0")}),
        # receive_lock: a condvar waiter that was sent the lock (wait morphing) owns it from here.
        "mutex_lock_wake": From(("mutex_lock_wake", "mutex_receive_lock"), {"mutex": ("arg", "a0")}),
        "mutex_unlock": From(("mutex_unlock",), {"mutex": ("arg", "a0")}),
        "mutex_try_lock": From(("mutex_try_lock",), {"mutex": ("arg", "a0"), "success": ("arg", "a1")}),
        # lfmutex::unlock wakes the waiter it hands the mutex to, which then records lock_wake; a
        # condvar waiter is sent the lock (send_lock: at once when the mutex is free, else by the
        # holder's next unlock) and records receive_lock. Either way the hand-off is the last
        # unlock or send_lock of that mutex before it.
        "mutex_handoff": Pairs(("mutex_unlock", "mutex_send_lock"), ("mutex_lock_wake", "mutex_receive_lock"), "a0",
                               {"mutex": ("arg", "a0"), "from_tid": ("first_tid",), "to_tid": ("then_tid",)}),
        # core/net_trace.cc: the first 128 bytes of each packet in and out, with its netisr protocol;
        # a frame for pcap as OSv's own `trace.py pcap-dump` makes it (Ethernet as is, others behind
        # a header of their ethertype). The full length is not recorded: len is what was captured.
        "net_packet": From(("net_packet_in", "net_packet_out"), {
            "packet": ("const", 0), "dir": ("per_source", {"net_packet_in": 0, "net_packet_out": 1}),
            "data": ("ethernet", "a0", "a1", "a1_len", NETISR_ETHERTYPES, NETISR_ETHER),
            "len": ("ethernet_len", "a0", "a1_len", NETISR_ETHER)}),
        # bsd/sys/netinet/tcp_var.h: every t_state change of a tcpcb (FreeBSD's state numbers, as ours).
        "tcp_state": From(("tcp_state",), {"conn": ("arg", "a0"), "from_state": ("arg", "a1"),
                                           "to_state": ("arg", "a2")}),
        # core/mempool.cc: malloc's own record, the allocator's detail record inside it, free, realloc.
        "memory_malloc": From(("memory_malloc",), {"buf": ("arg", "a0"), "len": ("arg", "a1"), "align": ("arg", "a2")}),
        **{f"memory_malloc_{kind}": From((f"memory_malloc_{kind}",), {
            "buf": ("arg", "a0"), "req_len": ("arg", "a1"), "alloc_len": ("arg", "a2"), "align": ("arg", "a3")})
           for kind in ("mempool", "large", "page")},
        "memory_free": From(("memory_free",), {"buf": ("arg", "a0")}),
        "memory_realloc": From(("memory_realloc",), {"in": ("arg", "a0"), "newlen": ("arg", "a1"), "out": ("arg", "a2")}),
        "condvar_wait": From(("condvar_wait",), {"condvar": ("arg", "a0"), "mutex": ("const", 0)}),
        "condvar_wake": From(("condvar_wake_one", "condvar_wake_all"), {
            "condvar": ("arg", "a0"), "count": ("per_source", {"condvar_wake_one": 1, "condvar_wake_all": 0})}),
    },
)
