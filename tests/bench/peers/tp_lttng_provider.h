// LTTng-UST tracepoint provider for the tracepoint comparison: two events with
// sched_wake's payload (uint32_t tid, uint16_t cpu). The session enables `on` and
// leaves `off` disabled, so one run measures both states.
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER osvtrace_bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./tp_lttng_provider.h"

#if !defined(TP_LTTNG_PROVIDER_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define TP_LTTNG_PROVIDER_H

#include <lttng/tracepoint.h>

LTTNG_UST_TRACEPOINT_EVENT(osvtrace_bench, on,
    LTTNG_UST_TP_ARGS(uint32_t, tid, uint16_t, cpu),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint32_t, tid, tid)
        lttng_ust_field_integer(uint16_t, cpu, cpu)))

LTTNG_UST_TRACEPOINT_EVENT(osvtrace_bench, off,
    LTTNG_UST_TP_ARGS(uint32_t, tid, uint16_t, cpu),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint32_t, tid, tid)
        lttng_ust_field_integer(uint16_t, cpu, cpu)))

#endif

#include <lttng/tracepoint-event.h>
