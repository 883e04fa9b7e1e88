// Commands from the host on the virtio-serial port org.osvtrace.ctl, one per
// line: "ID VERB [ARGS]\n", ID a decimal number the reply (an ack frame on
// the trace port, in order with the records) carries back:
//
//   ID enable GLOB,GLOB    set enable flags (anchored globs, as trace=)
//   ID disable GLOB,GLOB   clear them
//   ID backtrace GLOB,GLOB    their records carry their stack from now on (as tracebt=)
//   ID nobacktrace GLOB,GLOB  no longer
//   ID flush               send everything committed now
//   ID stop                end the stream (the rest of the trace, then the end frame)
//
// enable/disable/backtrace/nobacktrace take effect here and now, in the virtio-console service
// thread, as soon as the device delivers the line; flush and stop at the
// drain's next pass (at most one drain period later).
#include "core/console.hh"
#include "core/trace.hh"
#include "core/trace_stream.hh"
#include "generated/tracepoints.hh"
#include "lib/glob.hh"
#include "lib/printf.hh"
#include "lib/string.hh"

namespace trace_stream {
namespace {

constexpr size_t max_line = 512;
char line[max_line];
size_t line_len;
bool line_overflow;

// The next space-separated word of [*p, end): its start, and its length in *n.
const char* word(const char** p, const char* end, size_t* n)
{
    const char* s = *p;
    while (s < end && *s == ' ') {
        s++;
    }
    const char* e = s;
    while (e < end && *e != ' ') {
        e++;
    }
    *n = size_t(e - s);
    *p = e;
    return s;
}

// enable/disable and backtrace/nobacktrace: set or clear flags by globs, and ack with how
// many tracepoints matched (or why none did).
void glob_command(uint32_t id, const char* arg, size_t alen, bool on,
                  int (*set)(const char*, size_t, uint8_t, char*, size_t), const char* on_word,
                  const char* off_word, const char* example)
{
    char msg[96];
    if (!alen) {
        snprintf(msg, sizeof msg, "which tracepoints? (a glob list: %s)", example);
        post_ack(id, -1, msg);
        return;
    }
    int m = set(arg, alen, on ? 1 : 0, msg, sizeof msg);
    if (m >= 0) {
        snprintf(msg, sizeof msg, "%s %d tracepoint%s", on ? on_word : off_word, m, m == 1 ? "" : "s");
    }
    post_ack(id, m, msg);
}

void run(const char* s, size_t len)
{
    const char* end = s + len;
    const char* p = s;
    size_t n;
    const char* w = word(&p, end, &n);
    uint64_t id = 0;
    if (!parse_u64(w, n, &id) || id == 0 || id > 0xffffffffu) {
        kprintf("trace: ctl: ignoring a line without a command id: '%.*s'\n", int(len), s);
        return;
    }
    const char* verb = word(&p, end, &n);
    size_t vlen = n;
    const char* arg = word(&p, end, &n);
    size_t alen = n;
    char msg[96];
    auto is = [&](const char* v) { return vlen == strlen(v) && !memcmp(verb, v, vlen); };
    if (is("enable") || is("disable")) {
        glob_command(uint32_t(id), arg, alen, is("enable"), trace_rt::set_flags, "enabled", "disabled",
                     "sched_*,mutex_lock");
    } else if (is("backtrace") || is("nobacktrace")) {
        glob_command(uint32_t(id), arg, alen, is("backtrace"), trace_rt::set_backtrace, "stacks on for",
                     "stacks off for", "mutex_lock_wait,sched_wait");
    } else if (is("flush")) {
        request_flush(uint32_t(id));
    } else if (is("stop")) {
        request_stop(uint32_t(id));
    } else {
        snprintf(msg, sizeof msg, "unknown command '%.*s' (enable, disable, backtrace, nobacktrace, flush, stop)",
                 int(vlen), verb);
        post_ack(uint32_t(id), -1, msg);
    }
}

}  // namespace

void ctl_receive(const char* data, size_t len, void*)
{
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        if (ch == '\n') {
            if (line_overflow) {
                kprintf("trace: ctl: a command longer than %zu bytes was dropped\n", max_line);
            } else if (line_len) {
                run(line, line_len);
            }
            line_len = 0;
            line_overflow = false;
        } else if (ch != '\r') {
            if (line_len < max_line) {
                line[line_len++] = ch;
            } else {
                line_overflow = true;
            }
        }
    }
}

}  // namespace trace_stream
