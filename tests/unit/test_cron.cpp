// Cron expressions and their next tick (common/cron.hpp): the field syntax, the Vixie day rule,
// month ends, leap years, and the DST gap and overlap of a real zone (Europe/Paris, from the
// system's tzdata).
#include "cron.hpp"

#include <date/date.h>
#include <doctest/doctest.h>

#include <string>
#include <variant>

using sluice::cron::Cron;

namespace {

// Milliseconds since the epoch of a UTC date and time.
std::int64_t utc(int y, unsigned mo, unsigned d, int h, int mi = 0, int s = 0) {
    const auto day = date::sys_days(date::year(y) / date::month(mo) / date::day(d));
    const auto t = day + std::chrono::hours(h) + std::chrono::minutes(mi) + std::chrono::seconds(s);
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Cron make(const std::string& expression, const std::string& zone = "UTC") {
    auto made = Cron::make(expression, zone);
    if (auto* error = std::get_if<Cron::Error>(&made)) FAIL(expression << ": " << error->message);
    return std::get<Cron>(made);
}

std::int64_t next(const Cron& cron, std::int64_t after) {
    const auto at = cron.next_after(after);
    REQUIRE(at.has_value());
    return *at;
}

std::string error_of(const std::string& expression, const std::string& zone = "UTC") {
    auto made = Cron::make(expression, zone);
    auto* error = std::get_if<Cron::Error>(&made);
    return error ? (error->zone ? "zone: " : "cron: ") + error->message : "";
}

}  // namespace

TEST_CASE("steps, ranges and lists") {
    const Cron quarter = make("*/15 * * * *");
    CHECK(next(quarter, utc(2026, 12, 3, 10, 7)) == utc(2026, 12, 3, 10, 15));
    CHECK(next(quarter, utc(2026, 12, 3, 10, 15)) == utc(2026, 12, 3, 10, 30));  // strictly after
    CHECK(next(quarter, utc(2026, 12, 3, 10, 14, 59) + 999) == utc(2026, 12, 3, 10, 15));
    CHECK(next(quarter, utc(2026, 12, 3, 23, 45)) == utc(2026, 12, 4, 0, 0));

    // 2026-12-03 is a Thursday.
    const Cron office = make("0 9-17/4 * * mon-FRI");
    CHECK(next(office, utc(2026, 12, 3, 10)) == utc(2026, 12, 3, 13));
    CHECK(next(office, utc(2026, 12, 4, 17)) == utc(2026, 12, 7, 9));

    const Cron listed = make("5,10-12,58/1 * * * *");
    CHECK(next(listed, utc(2026, 1, 1, 0, 5)) == utc(2026, 1, 1, 0, 10));
    CHECK(next(listed, utc(2026, 1, 1, 0, 12)) == utc(2026, 1, 1, 0, 58));
    CHECK(next(listed, utc(2026, 1, 1, 0, 59)) == utc(2026, 1, 1, 1, 5));

    CHECK(next(make("@hourly"), utc(2026, 1, 1, 0, 1)) == utc(2026, 1, 1, 1));
    CHECK(next(make("0 0 1 jan,JUL *"), utc(2026, 1, 1, 0, 0)) == utc(2026, 7, 1, 0));
    CHECK(next(make("0 12 * * 7"), utc(2026, 12, 3, 0)) == utc(2026, 12, 6, 12));  // 7 is Sunday too
}

TEST_CASE("a sixth field is seconds, first") {
    const Cron every_10s = make("*/10 * * * * *");
    CHECK(every_10s.has_seconds());
    CHECK_FALSE(make("* * * * *").has_seconds());
    CHECK(next(every_10s, utc(2026, 1, 1, 0, 0, 5)) == utc(2026, 1, 1, 0, 0, 10));
    const Cron every_second = make("* * * * * *");
    CHECK(next(every_second, utc(2026, 1, 1, 0, 0, 5) + 500) == utc(2026, 1, 1, 0, 0, 6));
    CHECK(next(every_second, utc(2026, 1, 1, 23, 59, 59)) == utc(2026, 1, 2, 0, 0, 0));
}

TEST_CASE("day of month and day of week: either, when both are restricted (Vixie cron)") {
    // The 13th or any Friday; 2026-12-04 is a Friday, 2026-12-13 a Sunday.
    const Cron either = make("0 0 13 * 5");
    CHECK(next(either, utc(2026, 12, 3, 1)) == utc(2026, 12, 4, 0));
    CHECK(next(either, utc(2026, 12, 11, 1)) == utc(2026, 12, 13, 0));
    CHECK(next(either, utc(2026, 12, 13, 1)) == utc(2026, 12, 18, 0));
    // Day of month `*`: the day of week alone decides.
    const Cron fridays = make("0 0 * * 5");
    CHECK(next(fridays, utc(2026, 12, 11, 1)) == utc(2026, 12, 18, 0));
    // Friday the 13th needs `*/...` to mean "both": the first field starting with `*` makes it AND.
    const Cron odd_fridays = make("0 0 */2 * 5");
    CHECK(next(odd_fridays, utc(2026, 12, 4, 1)) == utc(2026, 12, 11, 0));
}

TEST_CASE("month ends and leap years") {
    const Cron thirty_first = make("0 0 31 * *");
    CHECK(next(thirty_first, utc(2026, 1, 31, 0)) == utc(2026, 3, 31, 0));
    CHECK(next(thirty_first, utc(2026, 3, 31, 0)) == utc(2026, 5, 31, 0));
    const Cron leap_day = make("0 0 29 2 *");
    CHECK(next(leap_day, utc(2026, 1, 1, 0)) == utc(2028, 2, 29, 0));
    CHECK(next(leap_day, utc(2096, 3, 1, 0)) == utc(2104, 2, 29, 0));  // 2100 is not a leap year
    CHECK_FALSE(make("0 0 30 2 *").next_after(utc(2026, 1, 1, 0)).has_value());
}

TEST_CASE("DST in Europe/Paris: a skipped local time fires at the end of the gap, once") {
    // 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    const Cron half_past_two = make("30 2 * * *", "Europe/Paris");
    CHECK(next(half_past_two, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1));
    CHECK(next(half_past_two, utc(2026, 3, 29, 1)) == utc(2026, 3, 30, 0, 30));
    const Cron quarter = make("*/15 * * * *", "Europe/Paris");
    CHECK(next(quarter, utc(2026, 3, 29, 0, 50)) == utc(2026, 3, 29, 1, 0));  // 02:00..02:45 and 03:00: one tick
    CHECK(next(quarter, utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 29, 1, 15));
    CHECK(next(make("0 9 * * *", "Europe/Paris"), utc(2026, 3, 29, 0)) == utc(2026, 3, 29, 7));
    CHECK(next(make("0 9 * * *", "Europe/Paris"), utc(2026, 3, 28, 0)) == utc(2026, 3, 28, 8));
}

TEST_CASE("DST in Europe/Paris: a repeated local time fires once") {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:00..02:59 happen twice.
    const Cron half_past_two = make("30 2 * * *", "Europe/Paris");
    CHECK(next(half_past_two, utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 0, 30));  // the first 02:30
    CHECK(next(half_past_two, utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 1, 30));
    // Made during the repeated hour, after the first 02:30: the second one is its first tick.
    CHECK(next(half_past_two, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 1, 30));
    // Hourly: 02:00 CEST, then 03:00 CET; the repeated 02:00 does not fire again.
    const Cron hourly = make("0 * * * *", "Europe/Paris");
    CHECK(next(hourly, utc(2026, 10, 24, 23, 30)) == utc(2026, 10, 25, 0));
    CHECK(next(hourly, utc(2026, 10, 25, 0)) == utc(2026, 10, 25, 2));
}

TEST_CASE("bad expressions and zones are refused with a reason") {
    CHECK(error_of("").starts_with("cron: a cron expression has 5 fields"));
    CHECK(error_of("* * * *").starts_with("cron: a cron expression has 5 fields"));
    CHECK(error_of("* * * * * * *").starts_with("cron: a cron expression has 5 fields"));
    CHECK(error_of("60 * * * *").find("minute") != std::string::npos);
    CHECK(error_of("* 24 * * *").find("hour") != std::string::npos);
    CHECK(error_of("* * 0 * *").find("day of month") != std::string::npos);
    CHECK(error_of("* * * 13 *").find("month") != std::string::npos);
    CHECK(error_of("* * * * 8").find("day of week") != std::string::npos);
    CHECK(error_of("*/0 * * * *").find("step") != std::string::npos);
    CHECK(error_of("5-1 * * * *").find("backwards") != std::string::npos);
    CHECK(error_of("1,,2 * * * *").find("empty") != std::string::npos);
    CHECK(error_of("1/2/3 * * * *").find("'/'") != std::string::npos);
    CHECK(error_of("a b c d e").starts_with("cron: "));
    CHECK(error_of("* * * * fun").starts_with("cron: "));
    CHECK(error_of("-1 * * * *").starts_with("cron: "));
    CHECK(error_of("@reboot").starts_with("cron: "));
    CHECK(error_of(std::string(129, '*')).find("longer than 128") != std::string::npos);
    CHECK(error_of("* * * * *", "Mars/Olympus_Mons").starts_with("zone: "));
    CHECK(error_of("* * * * *", "").starts_with("zone: "));
    CHECK(error_of("* * * * *", "../../etc/passwd").starts_with("zone: "));
    CHECK(error_of("* * * * *", "Europe/Paris").empty());
    CHECK(error_of("\t0  12 * * *\t").empty());
}
