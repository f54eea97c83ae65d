// Cron expressions and their next tick in a time zone (README.md, "Schedules"): the api checks a
// schedule's expression and zone with make() and computes its first tick; the broker computes
// every later one. Standard 5-field cron (minute hour day-of-month month day-of-week) with
// numbers, `*`, ranges, steps, lists, month and weekday names and the @hourly-style macros; 6
// fields put a seconds field first (a Sluice extension, as Quartz, Croner and BullMQ have). Day
// of month and day of week combine as in Vixie cron: when both are restricted (neither starts
// with `*`), a day matching either fires. Times are local to an IANA zone read from the
// system's tzdata (/usr/share/zoneinfo, through Howard Hinnant's date/tz.h). Thread-safe: a Cron
// is immutable once made.
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace date {
class time_zone;
}

namespace sluice::cron {

// The longest expression and zone name accepted, in bytes.
inline constexpr std::size_t MAX_EXPRESSION_BYTES = 128;
inline constexpr std::size_t MAX_ZONE_BYTES = 64;

class Cron {
public:
    // Parses `expression` for zone `zone` (an IANA name such as "Europe/Paris", or "UTC").
    // Returns the Cron, or why not: {false, message} for a bad expression (including one that
    // can never fire, such as February 30), {true, message} for an unknown zone.
    struct Error {
        bool zone = false;
        std::string message;
    };
    static std::variant<Cron, Error> make(std::string_view expression, std::string_view zone);

    // The first tick strictly after `after_ms` (ms since the epoch), in ms since the epoch:
    // always a whole second. A local time the zone skips (clocks go forward) fires at the end
    // of the gap, once however many ticks fall in it; a local time the zone repeats (clocks go
    // back) fires once, at its first occurrence after `after_ms`. nullopt when none comes within
    // SEARCH_YEARS (make() refuses expressions that never fire, so only past the year 9999).
    std::optional<std::int64_t> next_after(std::int64_t after_ms) const;

    // Whether the expression has a seconds field.
    bool has_seconds() const { return has_seconds_; }

    // How far ahead next_after() looks: February 29 on a given weekday recurs within 28 years.
    static constexpr int SEARCH_YEARS = 30;

private:
    Cron() = default;

    std::bitset<60> seconds_, minutes_;
    std::bitset<24> hours_;
    std::bitset<32> days_;      // 1..31
    std::bitset<13> months_;    // 1..12
    std::bitset<7> weekdays_;   // 0 (Sunday)..6
    bool any_day_ = true;       // day of month starts with `*`
    bool any_weekday_ = true;   // day of week starts with `*`
    bool has_seconds_ = false;
    const date::time_zone* zone_ = nullptr;
};

}  // namespace sluice::cron
