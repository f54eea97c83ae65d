// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` a client sends
// with a submit, kept with the job, carried to its worker and returned in the job body. The
// api starts a new trace when there is none or it is malformed, as the spec says a receiver
// must. Ids are kept as the lowercase hex the header and OTLP's JSON encoding both use.
// Thread-safe: the id generator is per thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::trace {

// The trace a span belongs to, and the span's own id as a parent of the next.
struct TraceContext {
    std::string trace_id;  // 32 lowercase hex digits, not all zero
    std::string span_id;   // 16 lowercase hex digits, not all zero
    bool sampled = true;   // the flags' sampled bit: whether spans of this trace are recorded
};

// The context in a `traceparent` header value; nullopt when it is malformed (wrong length or
// characters, version ff, an all-zero id). A version above 00 is read as 00 is, ignoring what
// a later version appends after the fourth field, as the spec asks.
std::optional<TraceContext> parse_traceparent(std::string_view header);

// The header value for `context`: "00-{trace_id}-{span_id}-{01|00}".
std::string format_traceparent(const TraceContext& context);

// A random, non-zero id: 16 bytes (trace) or 8 bytes (span) as hex.
std::string new_trace_id();
std::string new_span_id();

// A child of `parent` (same trace and flags, a new span id), or the root of a new sampled
// trace when there is no parent.
TraceContext child_of(const std::optional<TraceContext>& parent);

}  // namespace sluice::trace
