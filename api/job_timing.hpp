// When a job may run: options.delay_s or options.run_at (RFC 3339) schedule it for later, and
// options.expire_after_s gives up on it when it has not started that long after it was due.
// The api turns them into the absolute times a SUBMIT carries (run_at_ms, expire_at_ms); the
// broker checks those again. Pure and thread-safe.
#pragma once

#include "request.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::api {

// Longest options.run_at text read: an RFC 3339 date-time with nanoseconds and an offset is 35
// characters; past this the value is refused without being parsed.
inline constexpr std::size_t MAX_RUN_AT_CHARS = 64;

// Milliseconds since the epoch of an RFC 3339 date-time ("2026-12-02T15:04:05Z",
// "2026-12-02t17:04:05.250+02:00"; 'T', 't' or ' ' between date and time; fractions past
// milliseconds are cut). nullopt when `text` is not one (a month 13, February 30, no offset...).
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text);

// Reads options.delay_s, options.run_at and options.expire_after_s from `options` (a JSON
// object) into `submit` as absolute times, `now_ms` being now: run_at_ms stays 0 for a job due
// now (a run_at in the past is now), expire_at_ms 0 without a deadline; the deadline counts from
// when the job is due. Adds the options as given to `given`, an object, for the request hash.
// Errors: 422 invalid_schedule (both delay_s and run_at; delay_s not a number of seconds from 0
// to a year; run_at not an RFC 3339 date-time or more than a year ahead), 422 invalid_expiry
// (expire_after_s not a number of seconds from 1 to a year).
std::optional<ApiError> read_timing(const json& options, std::int64_t now_ms, proto::Submit& submit, json& given);

}  // namespace sluice::api
