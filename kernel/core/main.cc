// Boot: from boot.S's call to kernel_entry() to the app's main thread.
//
//   console -> per-CPU (%gs), GDT/IDT -> command line -> memory (and the
//   CPU list from ACPI) -> PIT/TSC and LAPIC timer calibration -> trace ring
//   and control block -> threads: the boot context becomes CPU 0's idle
//   thread, "main" (tid 2) is created to run the app -> the other CPUs come
//   up (core/smp.cc) -> CPU 0 enters its idle loop and the app starts.
//
// The app's return value leaves QEMU through isa-debug-exit.
#include <stdint.h>

#include "acpi.hh"
#include "core/app.hh"
#include "core/cmdline.hh"
#include "core/console.hh"
#include "core/heap.hh"
#include "core/page_alloc.hh"
#include "core/panic.hh"
#include "core/percpu.hh"
#include "core/sched.hh"
#include "core/smp.hh"
#include "core/thread.hh"
#include "core/timer.hh"
#include "core/sampler.hh"
#include "core/trace.hh"
#include "core/trace_stream.hh"
#include "cpu.hh"
#include "debug_exit.hh"
#include "generated/tracepoints.hh"
#include "interrupts.hh"
#include "lapic.hh"
#include "lib/printf.hh"
#include "paging.hh"
#include "pvh.hh"
#include "tsc.hh"

extern "C" {
extern uint64_t boot_tsc;  // boot.S: TSC at the first kernel instruction
extern char boot_stack_bottom[], boot_stack_top[];
extern const uint8_t __build_id_note[];
typedef void (*init_fn)();
extern init_fn __init_array_start[], __init_array_end[];
[[noreturn]] void kernel_entry(uint32_t start_info_paddr);
}

// Debugging aid: a breakpoint here stops the kernel right after the app's main
// returned, before the stream drains and before QEMU exits (gdb capture,
// `osvtrace gdb`). Does nothing.
extern "C" __attribute__((noinline)) void osvtrace_app_exit(int status)
{
    asm volatile("" : : "r"(status) : "memory");
}

namespace {

char build_id[64];
cmdline::options opts;
acpi::cpu_list cpus_found;
const app_desc* the_app;

// The GNU build-id note (ld --build-id=sha1) as hex: it identifies the exact
// ELF, so a host tool can check that its symbols match the running kernel.
void format_build_id()
{
    const uint8_t* n = __build_id_note;
    uint32_t namesz = *reinterpret_cast<const uint32_t*>(n);
    uint32_t descsz = *reinterpret_cast<const uint32_t*>(n + 4);
    const uint8_t* desc = n + 12 + ((namesz + 3) & ~3u);
    size_t k = 0;
    for (uint32_t i = 0; i < descsz && k + 2 < sizeof build_id; i++) {
        k += snprintf(build_id + k, sizeof build_id - k, "%02x", desc[i]);
    }
}

void app_thread(void*)
{
    trace_stream::start();  // tracemode=stream: the host is connected before the app runs
    uint64_t t = tsc::now();
    kprintf("boot: app main at %lu us (kernel entry at %lu us, TSC %lu Hz)\n",
            tsc::to_us(t - boot_tsc), tsc::to_us(boot_tsc), tsc::hz);
    int status = the_app->main(opts.argc, opts.argv);
    osvtrace_app_exit(status);
    if (status < 0 || status > debug_exit::max_app_status) {
        kprintf("%s: exit status %d out of range 0..%d; reporting %d\n", the_app->name, status,
                debug_exit::max_app_status, debug_exit::max_app_status);
        status = debug_exit::max_app_status;
    }
    trace_stream::finish(status);  // the whole trace reaches the host before QEMU exits
    debug_exit::exit_status(status);
}

[[noreturn]] void refuse()
{
    kprintf("kernel: not starting anything (exit status %d)\n", debug_exit::status_refused);
    debug_exit::exit_status(debug_exit::status_refused);
}

}  // namespace

void kernel_entry(uint32_t start_info_paddr)
{
    // %gs first: the trace platform and current_thread() read through it.
    boot_cpu.id = 0;
    percpu_install(&boot_cpu);
    cpus[0] = &boot_cpu;
    ncpus.store(1, std::memory_order_release);

    console::init();
    for (init_fn* f = __init_array_start; f < __init_array_end; f++) {
        (*f)();
    }
    arch::gdt_init(boot_cpu.arch);
    arch::idt_init();
    arch::idt_load();
    arch::pic_disable();

    auto* si = reinterpret_cast<const pvh::start_info*>(uint64_t(start_info_paddr));
    const char* cmd = cmdline::save(si->cmdline_paddr);
    format_build_id();
    trace_rt::early_init(cmd, build_id);
    kprintf("osvtrace kernel, build %.12s, cmdline: %s\n", build_id, cmd);

    pages::init(si);
    acpi::find_cpus(si, &cpus_found);
    // Everything needed from the boot data (some of it in page 0) is copied
    // or consumed now: unmap page 0 so null pointers fault.
    paging::set_guard(0, true);

    bool ok = cmdline::parse(&opts);
    uint64_t ring_bytes = trace_rt::default_buf_bytes;
    if (ok && opts.tracebuf) {
        ring_bytes = trace_rt::ring_bytes_for(opts.tracebuf);
        if (!ring_bytes) {
            kprintf("cmdline: tracebuf=%lu out of range (%lu .. %lu bytes)\n", opts.tracebuf,
                    trace_rt::min_buf_bytes, trace_rt::max_buf_bytes);
            ok = false;
        }
    }
    if (ok && opts.trace && !trace_rt::enable_globs(opts.trace, __builtin_strlen(opts.trace))) {
        ok = false;
    }
    if (ok && opts.tracebt && !trace_rt::backtrace_globs(opts.tracebt, __builtin_strlen(opts.tracebt))) {
        ok = false;
    }
    if (ok) {
        sampler::set_hz(opts.sampler_hz);
    }
    if (ok && !(the_app = apps::find(opts.app))) {
        kprintf("kernel: unknown app '%s'\n", opts.app);
        apps::list();
        ok = false;
    }
    if (!ok) {
        refuse();
    }

    lapic::init();
    if (!tsc::calibrate()) {
        kprintf("tsc: using fallback rates; times will be off\n");
    }
    lapic::timer_enable();
    timers::init();
    sched::set_idle_poll_us(opts.idle_poll_us >= 0 ? uint64_t(opts.idle_poll_us) : sched::default_idle_poll_us);

    sched::init_cpu(&boot_cpu);
    boot_cpu.idle = threads::adopt_boot_context(&boot_cpu, "idle0", boot_stack_bottom,
                                                boot_stack_top - boot_stack_bottom);
    if (!trace_rt::init_cpu(&boot_cpu, ring_bytes, opts.tracemode)) {
        refuse();
    }
    trace_rt::publish(tsc::hz, boot_tsc);

    // Before the APs, so the app's thread is tid 2 whatever the CPU count. It
    // cannot run yet: this CPU runs nothing else until its idle loop.
    if (!threads::create("main", app_thread, nullptr, 256 * 1024)) {
        panic("kernel: cannot create the main thread");
    }
    smp::start_aps(cpus_found, ring_bytes, opts.tracemode);
    sched::idle_loop();
}

// The C++ runtime bits a freestanding kernel still needs.
extern "C" {
void* __dso_handle;
int atexit(void (*)()) { return 0; }  // nothing is torn down: the VM just exits
void __cxa_pure_virtual() { panic("pure virtual function called"); }
}
