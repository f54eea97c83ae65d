// Cron expressions and their next tick (see cron.hpp).
#include "cron.hpp"

#include <date/tz.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <stdexcept>
#include <vector>

namespace sluice::cron {
namespace {

using std::chrono::seconds;

constexpr std::array<std::string_view, 12> MONTH_NAMES = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> WEEKDAY_NAMES = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

// The macros of Vixie cron and cronie, as their 5-field meaning (@reboot has none here).
constexpr std::array<std::pair<std::string_view, std::string_view>, 7> MACROS = {{
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
}};

// Candidate local times tried per next_after() call, at most: each one the zone does not map
// past `after` (a tick inside a gap that already fired) costs one more, a handful in practice.
constexpr int MAX_CANDIDATES = 100000;

struct Field {
    const char* name;
    unsigned min, max;  // for the day of week, max is 7 (Sunday again), stored as 0
    const std::string_view* names = nullptr;  // names[i] means min + i
    std::size_t name_count = 0;
};

constexpr Field SECOND{"second", 0, 59};
constexpr Field MINUTE{"minute", 0, 59};
constexpr Field HOUR{"hour", 0, 23};
constexpr Field DAY{"day of month", 1, 31};
constexpr Field MONTH{"month", 1, 12, MONTH_NAMES.data(), MONTH_NAMES.size()};
constexpr Field WEEKDAY{"day of week", 0, 7, WEEKDAY_NAMES.data(), WEEKDAY_NAMES.size()};

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    for (;;) {
        const std::size_t at = text.find(separator);
        parts.push_back(text.substr(0, at));
        if (at == std::string_view::npos) return parts;
        text.remove_prefix(at + 1);
    }
}

std::vector<std::string_view> words(std::string_view text) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
        const std::size_t start = i;
        while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
        if (i > start) out.push_back(text.substr(start, i - start));
    }
    return out;
}

// A number of 1..2 digits, or one of the field's names (any case).
std::optional<unsigned> value_of(std::string_view text, const Field& field) {
    if (!text.empty() && text.size() <= 2 &&
        std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
        unsigned v = 0;
        for (char c : text) v = v * 10 + static_cast<unsigned>(c - '0');
        return v;
    }
    if (text.size() != 3) return std::nullopt;
    std::string lower(text);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (std::size_t i = 0; i < field.name_count; ++i)
        if (field.names[i] == lower) return field.min + static_cast<unsigned>(i);
    return std::nullopt;
}

// Parses one field into `bits` (bit v for value v; the day of week's 7 as 0). Returns the error
// message, or an empty string.
template <std::size_t N>
std::string parse_field(std::string_view text, const Field& field, std::bitset<N>& bits) {
    const std::string where = std::string(" in the ") + field.name + " field";
    const std::string range = " (" + std::to_string(field.min) + "-" + std::to_string(field.max) + ")";
    for (std::string_view item : split(text, ',')) {
        if (item.empty()) return "an empty list item" + where;
        const auto slash = split(item, '/');
        if (slash.size() > 2) return "'" + std::string(item) + "' has more than one '/'" + where;
        unsigned step = 1;
        if (slash.size() == 2) {
            const auto given = value_of(slash[1], Field{field.name, 0, 99});
            if (!given || *given == 0 || *given > field.max)
                return "step '" + std::string(slash[1]) + "' must be 1.." + std::to_string(field.max) + where;
            step = *given;
        }
        unsigned low = field.min, high = field.max;
        if (slash[0] != "*") {
            const auto dash = split(slash[0], '-');
            if (dash.size() > 2) return "'" + std::string(slash[0]) + "' is not a value or a range" + where;
            const auto first = value_of(dash[0], field);
            if (!first || *first < field.min || *first > field.max)
                return "'" + std::string(dash[0]) + "' is not a value" + range + where;
            low = *first;
            // A single value with a step runs to the end of the field (as cronie reads `5/15`).
            high = slash.size() == 2 ? field.max : low;
            if (dash.size() == 2) {
                const auto last = value_of(dash[1], field);
                if (!last || *last < field.min || *last > field.max)
                    return "'" + std::string(dash[1]) + "' is not a value" + range + where;
                if (*last < low) return "range '" + std::string(slash[0]) + "' runs backwards" + where;
                high = *last;
            }
        }
        for (unsigned v = low; v <= high; v += step) bits.set(v % N);
    }
    return "";
}

}  // namespace

std::variant<Cron, Cron::Error> Cron::make(std::string_view expression, std::string_view zone) {
    if (expression.size() > MAX_EXPRESSION_BYTES)
        return Error{false, "the cron expression is longer than " + std::to_string(MAX_EXPRESSION_BYTES) + " bytes"};
    for (const auto& [macro, meaning] : MACROS)
        if (expression == macro) expression = meaning;
    std::vector<std::string_view> fields = words(expression);
    if (fields.size() != 5 && fields.size() != 6)
        return Error{false, "a cron expression has 5 fields (minute hour day-of-month month day-of-week), or 6 with "
                            "seconds first; this one has " + std::to_string(fields.size())};
    Cron cron;
    cron.has_seconds_ = fields.size() == 6;
    if (!cron.has_seconds_) fields.insert(fields.begin(), "0");
    std::bitset<8> weekdays;  // 0..7 before folding 7 into 0
    std::string problem = parse_field(fields[0], SECOND, cron.seconds_);
    if (problem.empty()) problem = parse_field(fields[1], MINUTE, cron.minutes_);
    if (problem.empty()) problem = parse_field(fields[2], HOUR, cron.hours_);
    if (problem.empty()) problem = parse_field(fields[3], DAY, cron.days_);
    if (problem.empty()) problem = parse_field(fields[4], MONTH, cron.months_);
    if (problem.empty()) problem = parse_field(fields[5], WEEKDAY, weekdays);
    if (!problem.empty()) return Error{false, problem};
    for (unsigned d = 0; d < 7; ++d) cron.weekdays_[d] = weekdays[d] || (d == 0 && weekdays[7]);
    cron.any_day_ = fields[3].front() == '*';
    cron.any_weekday_ = fields[5].front() == '*';

    if (zone.empty() || zone.size() > MAX_ZONE_BYTES)
        return Error{true, "timezone must be an IANA time zone name of 1.." + std::to_string(MAX_ZONE_BYTES) + " bytes"};
    try {
        cron.zone_ = date::locate_zone(std::string(zone));
    } catch (const std::runtime_error&) {
        return Error{true, "'" + std::string(zone) + "' is not a time zone this host's tzdata knows (an IANA name "
                           "such as Europe/Paris, or UTC)"};
    }
    return cron;
}

std::optional<std::int64_t> Cron::next_after(std::int64_t after_ms) const {
    using date::local_days;
    using date::local_seconds;
    const auto after = std::chrono::floor<seconds>(date::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(after_ms)));

    // The earliest local second past `from` whose fields all match.
    const auto next_local = [this](local_seconds from) -> std::optional<local_seconds> {
        const local_seconds start = from + seconds(1);
        local_days day = std::chrono::floor<date::days>(start);
        auto tod = std::chrono::duration_cast<seconds>(start - day).count();
        for (int i = 0; i < SEARCH_YEARS * 366; ++i, day += date::days(1), tod = 0) {
            const date::year_month_day ymd(day);
            if (!months_[static_cast<unsigned>(ymd.month())]) continue;
            const bool day_ok = days_[static_cast<unsigned>(ymd.day())];
            const bool weekday_ok = weekdays_[date::weekday(day).c_encoding()];
            // Vixie cron: both restricted, either fires; else each must match (a `*` always does).
            if (any_day_ || any_weekday_ ? !(day_ok && weekday_ok) : !(day_ok || weekday_ok)) continue;
            const auto h0 = tod / 3600, m0 = tod / 60 % 60, s0 = tod % 60;
            for (auto h = h0; h < 24; ++h) {
                if (!hours_[h]) continue;
                for (auto m = h == h0 ? m0 : 0; m < 60; ++m) {
                    if (!minutes_[m]) continue;
                    for (auto s = h == h0 && m == m0 ? s0 : 0; s < 60; ++s)
                        if (seconds_[s]) return day + seconds(h * 3600 + m * 60 + s);
                }
            }
        }
        return std::nullopt;
    };

    local_seconds local = zone_->to_local(after);
    for (int i = 0; i < MAX_CANDIDATES; ++i) {
        const auto candidate = next_local(local);
        if (!candidate) return std::nullopt;
        const date::local_info info = zone_->get_info(*candidate);
        const auto at_offset = [&](seconds offset) { return date::sys_seconds(candidate->time_since_epoch() - offset); };
        const auto ms_of = [](date::sys_seconds t) { return std::int64_t{t.time_since_epoch().count()} * 1000; };
        std::int64_t at_ms = ms_of(at_offset(info.first.offset));
        if (info.result == date::local_info::nonexistent) at_ms = ms_of(info.first.end);
        else if (info.result == date::local_info::ambiguous && at_ms <= after_ms) at_ms = ms_of(at_offset(info.second.offset));
        if (at_ms > after_ms) return at_ms;
        local = *candidate;
    }
    return std::nullopt;
}

}  // namespace sluice::cron
