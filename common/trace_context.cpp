// See trace_context.hpp.
#include "trace_context.hpp"

#include <algorithm>
#include <cstdint>
#include <random>

namespace sluice::trace {
namespace {

constexpr std::size_t TRACE_ID_HEX = 32;
constexpr std::size_t SPAN_ID_HEX = 16;
// "00-" + trace id + "-" + span id + "-" + flags: the whole header in version 00.
constexpr std::size_t HEADER_LENGTH = 3 + TRACE_ID_HEX + 1 + SPAN_ID_HEX + 3;

bool lower_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool all_zero(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

int hex_value(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

// Ids need to be unique, not secret: a per-thread Mersenne Twister seeded once from the OS.
std::string random_hex(std::size_t digits) {
    thread_local std::mt19937_64 engine{std::random_device{}()};
    static constexpr char HEX[] = "0123456789abcdef";
    std::string out(digits, '0');
    while (all_zero(out)) {
        for (std::size_t i = 0; i < digits; i += 16) {
            std::uint64_t bits = engine();
            for (std::size_t j = i; j < std::min(digits, i + 16); ++j, bits >>= 4) out[j] = HEX[bits & 0xf];
        }
    }
    return out;
}

}  // namespace

std::optional<TraceContext> parse_traceparent(std::string_view header) {
    if (header.size() < HEADER_LENGTH) return std::nullopt;
    const std::string_view version = header.substr(0, 2);
    if (!lower_hex(version) || version == "ff") return std::nullopt;
    if (version == "00" ? header.size() != HEADER_LENGTH
                        : header.size() > HEADER_LENGTH && header[HEADER_LENGTH] != '-')
        return std::nullopt;
    if (header[2] != '-' || header[3 + TRACE_ID_HEX] != '-' || header[4 + TRACE_ID_HEX + SPAN_ID_HEX] != '-')
        return std::nullopt;
    const std::string_view trace_id = header.substr(3, TRACE_ID_HEX);
    const std::string_view span_id = header.substr(4 + TRACE_ID_HEX, SPAN_ID_HEX);
    const std::string_view flags = header.substr(5 + TRACE_ID_HEX + SPAN_ID_HEX, 2);
    if (!lower_hex(trace_id) || !lower_hex(span_id) || !lower_hex(flags) || all_zero(trace_id) || all_zero(span_id))
        return std::nullopt;
    return TraceContext{std::string(trace_id), std::string(span_id), (hex_value(flags[1]) & 1) != 0};
}

std::string format_traceparent(const TraceContext& context) {
    return "00-" + context.trace_id + "-" + context.span_id + (context.sampled ? "-01" : "-00");
}

std::string new_trace_id() { return random_hex(TRACE_ID_HEX); }

std::string new_span_id() { return random_hex(SPAN_ID_HEX); }

TraceContext child_of(const std::optional<TraceContext>& parent) {
    if (!parent) return TraceContext{new_trace_id(), new_span_id(), true};
    return TraceContext{parent->trace_id, new_span_id(), parent->sampled};
}

}  // namespace sluice::trace
