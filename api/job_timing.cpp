// Scheduling and deadline options of a submit (see job_timing.hpp).
#include "job_timing.hpp"

#include <cmath>

namespace sluice::api {
namespace {

constexpr std::int64_t MS_PER_DAY = 24LL * 3600 * 1000;

// Digits at text[at..at+n) as a number; nullopt unless all are digits.
std::optional<int> digits(std::string_view text, std::size_t at, std::size_t n) {
    if (at + n > text.size()) return std::nullopt;
    int value = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (text[i] < '0' || text[i] > '9') return std::nullopt;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, int m, int d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const std::int64_t yoe = y - era * 400;
    const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int days_in_month(int y, int m) {
    static constexpr int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : DAYS[m - 1];
}

// A number of seconds option as milliseconds, when it is a number from `min_ms` to `max_ms`.
std::optional<std::int64_t> seconds_as_ms(const json& value, std::int64_t min_ms, std::int64_t max_ms) {
    if (!value.is_number()) return std::nullopt;
    const double seconds = value.get<double>();
    if (!std::isfinite(seconds) || seconds * 1000 < static_cast<double>(min_ms) ||
        seconds * 1000 > static_cast<double>(max_ms))
        return std::nullopt;
    return std::llround(seconds * 1000);
}

}  // namespace

std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text) {
    if (text.size() < 20 || text.size() > MAX_RUN_AT_CHARS) return std::nullopt;
    const auto year = digits(text, 0, 4), month = digits(text, 5, 2), day = digits(text, 8, 2);
    const auto hour = digits(text, 11, 2), minute = digits(text, 14, 2), second = digits(text, 17, 2);
    if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
    if (text[4] != '-' || text[7] != '-' || text[13] != ':' || text[16] != ':') return std::nullopt;
    if (text[10] != 'T' && text[10] != 't' && text[10] != ' ') return std::nullopt;
    if (*month < 1 || *month > 12 || *day < 1 || *day > days_in_month(*year, *month) || *hour > 23 ||
        *minute > 59 || *second > 60)
        return std::nullopt;
    std::size_t at = 19;
    int millis = 0;
    if (text[at] == '.') {
        const std::size_t start = ++at;
        while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
            if (at - start < 3) millis = millis * 10 + (text[at] - '0');
            ++at;
        }
        if (at == start) return std::nullopt;
        for (std::size_t n = at - start; n < 3; ++n) millis *= 10;
    }
    std::int64_t offset_min = 0;
    if (at + 1 == text.size() && (text[at] == 'Z' || text[at] == 'z')) {
        ++at;
    } else if (at + 6 == text.size() && (text[at] == '+' || text[at] == '-') && text[at + 3] == ':') {
        const auto oh = digits(text, at + 1, 2), om = digits(text, at + 4, 2);
        if (!oh || !om || *oh > 23 || *om > 59) return std::nullopt;
        offset_min = (*oh * 60 + *om) * (text[at] == '-' ? -1 : 1);
        at += 6;
    }
    if (at != text.size()) return std::nullopt;
    const std::int64_t days = days_from_civil(*year, *month, *day);
    const std::int64_t seconds = days * 86400 + *hour * 3600 + *minute * 60 + *second - offset_min * 60;
    return seconds * 1000 + millis;
}

std::optional<ApiError> read_timing(const json& options, std::int64_t now_ms, proto::Submit& submit, json& given) {
    const auto delay = options.find("delay_s");
    const auto run_at = options.find("run_at");
    const auto expire = options.find("expire_after_s");
    std::int64_t due_ms = now_ms;
    if (delay != options.end() && run_at != options.end())
        return api_error(errors::INVALID_SCHEDULE, "options.delay_s and options.run_at exclude each other: give one");
    if (delay != options.end()) {
        const auto ms = seconds_as_ms(*delay, 0, limits::MAX_SCHEDULE_AHEAD_MS);
        if (!ms)
            return api_error(errors::INVALID_SCHEDULE, "options.delay_s must be a number of seconds from 0 to " +
                                                           std::to_string(limits::MAX_SCHEDULE_AHEAD_MS / 1000));
        due_ms = now_ms + *ms;
        given["delay_s"] = *delay;
    }
    if (run_at != options.end()) {
        const auto ms = run_at->is_string() ? parse_rfc3339_ms(run_at->get_ref<const std::string&>()) : std::nullopt;
        if (!ms)
            return api_error(errors::INVALID_SCHEDULE, "options.run_at must be an RFC 3339 date-time with an offset, "
                                                       "such as 2026-12-02T15:04:05Z");
        if (*ms > now_ms + limits::MAX_SCHEDULE_AHEAD_MS)
            return api_error(errors::INVALID_SCHEDULE, "options.run_at must be at most " +
                                                           std::to_string(limits::MAX_SCHEDULE_AHEAD_MS / MS_PER_DAY) +
                                                           " days ahead");
        due_ms = std::max(now_ms, *ms);
        given["run_at"] = *run_at;
    }
    if (due_ms > now_ms) submit.run_at_ms = static_cast<std::uint64_t>(due_ms);
    if (expire != options.end()) {
        const auto ms = seconds_as_ms(*expire, limits::EXPIRE_AFTER_MS_MIN, limits::EXPIRE_AFTER_MS_MAX);
        if (!ms)
            return api_error(errors::INVALID_EXPIRY, "options.expire_after_s must be a number of seconds from " +
                                                         std::to_string(limits::EXPIRE_AFTER_MS_MIN / 1000) + " to " +
                                                         std::to_string(limits::EXPIRE_AFTER_MS_MAX / 1000));
        submit.expire_at_ms = static_cast<std::uint64_t>(due_ms + *ms);
        given["expire_after_s"] = *expire;
    }
    return std::nullopt;
}

}  // namespace sluice::api
