// Scheduling and deadline options of a submit (api/job_timing.hpp): RFC 3339 parsing, delay_s,
// run_at and expire_after_s turned into the SUBMIT's absolute times, hostile values refused with
// stable codes; and the queue report as GET /v1/queues and a job's eta_s read it
// (api/queues.hpp), made by the broker's own writer (broker/queue_report.hpp).
#include "budgets.hpp"
#include "job_timing.hpp"
#include "queue_report.hpp"
#include "queues.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace sluice::api;
using sluice::proto::Submit;

namespace {

const std::string ID = "0b7c1f0e-2d4e-4a7b-9c1d-3e5f7a9b1c2d";
// 2026-12-02T15:00:00Z
constexpr std::int64_t NOW = 1796223600000;
constexpr std::int64_t YEAR_MS = 365LL * 24 * 3600 * 1000;

Checked<Submit> parse_at(const std::string& options) {
    return parse_submit(R"({"type": "echo", "options": )" + options + "}", ID, std::nullopt,
                        sluice::limits::DEFAULT_MAX_INPUT, NOW);
}

Submit ok(const std::string& options) {
    auto result = parse_at(options);
    if (auto* e = std::get_if<ApiError>(&result)) FAIL_CHECK(options << " -> " << e->code << ": " << e->message);
    REQUIRE(std::holds_alternative<Submit>(result));
    return std::get<Submit>(result);
}

std::string code_of(const std::string& options) {
    auto result = parse_at(options);
    REQUIRE_MESSAGE(std::holds_alternative<ApiError>(result), options);
    CHECK(std::get<ApiError>(result).status == 422);
    return std::get<ApiError>(result).code;
}

}  // namespace

TEST_CASE("RFC 3339 date-times, with offsets and fractions") {
    CHECK(parse_rfc3339_ms("2026-12-02T15:00:00Z") == NOW);
    CHECK(parse_rfc3339_ms("2026-12-02t15:00:00z") == NOW);
    CHECK(parse_rfc3339_ms("2026-12-02 15:00:00Z") == NOW);
    CHECK(parse_rfc3339_ms("2026-12-02T17:00:00+02:00") == NOW);
    CHECK(parse_rfc3339_ms("2026-12-02T09:30:00-05:30") == NOW);
    CHECK(parse_rfc3339_ms("2026-12-02T15:00:00.25Z") == NOW + 250);
    CHECK(parse_rfc3339_ms("2026-12-02T15:00:00.123456789Z") == NOW + 123);
    CHECK(parse_rfc3339_ms("1970-01-01T00:00:00Z") == 0);
    CHECK(parse_rfc3339_ms("2028-02-29T00:00:00Z").has_value());  // a leap day
    for (const char* bad :
         {"", "2026-12-02", "2026-12-02T15:00:00", "2026-12-02T15:00Z", "2026-13-02T15:00:00Z",
          "2027-02-29T00:00:00Z", "2026-12-32T00:00:00Z", "2026-12-02T24:00:00Z", "2026-12-02T15:60:00Z",
          "2026-12-02T15:00:00+24:00", "2026-12-02T15:00:00+0200", "2026-12-02T15:00:00.Z", "2026-12-02X15:00:00Z",
          "+2026-12-02T15:00:00Z", "2026-12-02T15:00:00Z ", "２０２６-12-02T15:00:00Z", "now", "tomorrow"})
        CHECK_MESSAGE(!parse_rfc3339_ms(bad), bad);
    CHECK_FALSE(parse_rfc3339_ms("2026-12-02T15:00:00." + std::string(100, '1') + "Z"));  // past MAX_RUN_AT_CHARS
}

TEST_CASE("delay_s and run_at make run_at_ms; in the past or zero is now") {
    CHECK(ok(R"({"delay_s": 30})").run_at_ms == NOW + 30000);
    CHECK(ok(R"({"delay_s": 0.5})").run_at_ms == NOW + 500);
    CHECK(ok(R"({"delay_s": 0})").run_at_ms == 0);
    CHECK(ok(R"({"run_at": "2026-12-02T16:00:00+01:00"})").run_at_ms == 0);  // that is now
    CHECK(ok(R"({"run_at": "2026-12-02T15:10:00Z"})").run_at_ms == NOW + 600000);
    CHECK(ok(R"({"run_at": "2020-01-01T00:00:00Z"})").run_at_ms == 0);
    CHECK(ok(R"({"delay_s": 31536000})").run_at_ms == NOW + YEAR_MS);
    CHECK(ok("{}").run_at_ms == 0);
    CHECK(ok("{}").expire_at_ms == 0);
}

TEST_CASE("expire_after_s counts from when the job is due") {
    CHECK(ok(R"({"expire_after_s": 60})").expire_at_ms == NOW + 60000);
    CHECK(ok(R"({"delay_s": 10, "expire_after_s": 60})").expire_at_ms == NOW + 70000);
    CHECK(ok(R"({"run_at": "2026-12-02T15:00:10Z", "expire_after_s": 1.5})").expire_at_ms == NOW + 11500);
    CHECK(ok(R"({"run_at": "2001-01-01T00:00:00Z", "expire_after_s": 1})").expire_at_ms == NOW + 1000);
}

TEST_CASE("hostile schedules and deadlines are 422 with stable codes") {
    for (const char* options :
         {R"({"delay_s": -1})", R"({"delay_s": 31536001})", R"({"delay_s": 1e300})", R"({"delay_s": "10"})",
          R"({"delay_s": "NaN"})", R"({"delay_s": null})", R"({"delay_s": true})", R"({"delay_s": [1]})",
          R"({"delay_s": 1, "run_at": "2026-12-02T15:10:00Z"})", R"({"run_at": "garbage"})",
          R"({"run_at": 1796223600})",
          R"({"run_at": "9999-12-31T23:59:59Z"})", R"({"run_at": "2027-12-03T15:00:00Z"})", R"({"run_at": ""})"})
        CHECK_MESSAGE(code_of(options) == "invalid_schedule", options);
    CHECK(code_of(R"({"run_at": ")" + std::string(100000, '9') + R"("})") == "invalid_schedule");
    for (const char* options :
         {R"({"expire_after_s": 0})", R"({"expire_after_s": -5})", R"({"expire_after_s": 0.5})",
          R"({"expire_after_s": 31536001})", R"({"expire_after_s": "60"})", R"({"expire_after_s": 1e308})",
          R"({"expire_after_s": {}})"})
        CHECK_MESSAGE(code_of(options) == "invalid_expiry", options);
    // Not JSON at all: NaN is no JSON number.
    auto nan = parse_submit(R"({"type": "echo", "options": {"delay_s": NaN}})", ID);
    REQUIRE(std::holds_alternative<ApiError>(nan));
    CHECK(std::get<ApiError>(nan).code == "invalid_json");
}

TEST_CASE("the request hash holds the options as given, not the times they made") {
    auto keyed = [](const std::string& options, std::int64_t now) {
        auto r = parse_submit(R"({"type": "echo", "options": )" + options + "}", ID, std::string_view("k"),
                              sluice::limits::DEFAULT_MAX_INPUT, now);
        return std::get<Submit>(r).request_hash;
    };
    CHECK(keyed(R"({"delay_s": 60})", NOW) == keyed(R"({"delay_s": 60})", NOW + 5000));
    CHECK(keyed(R"({"delay_s": 60})", NOW) != keyed(R"({"delay_s": 61})", NOW));
    CHECK(keyed(R"({"delay_s": 60})", NOW) != keyed("{}", NOW));
    CHECK(keyed(R"({"expire_after_s": 60})", NOW) != keyed("{}", NOW));
    // No timing options: the hash is what it was before they existed.
    CHECK(keyed("{}", NOW) == request_hash(ok("{}")));
}

namespace {

std::vector<std::pair<std::string, std::string>> as_pairs(const std::vector<std::string>& fields) {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) pairs.emplace_back(fields[i], fields[i + 1]);
    return pairs;
}

}  // namespace

TEST_CASE("GET /v1/queues: a tenant sees its own rows; an admin sees every tenant's summed") {
    using sluice::broker::QueueRow;
    sluice::broker::QueueRows rows;
    rows[{"echo", "acme"}] = QueueRow{3, 1, 2, 9000, 5, 1};
    rows[{"echo", "beta"}] = QueueRow{7, 0, 1, 4000, 2, 0};
    rows[{"secret", "beta"}] = QueueRow{1, 0, 0, 9500, 0, 0};
    const auto report = as_pairs(sluice::broker::queue_report(10000, rows, {{"echo", 2}}, 1 << 20));

    const json all = json::parse(*queues_json(report, std::nullopt));
    REQUIRE(all["queues"].size() == 2);
    CHECK(all["queues"][0] == json{{"type", "echo"}, {"workers", 2}, {"queued", 10}, {"scheduled", 1},
                                    {"running", 3}, {"oldest_queued_age_s", 6.0}, {"succeeded_last_minute", 7},
                                    {"failed_last_minute", 1}});
    CHECK(all["queues"][1]["type"] == "secret");
    CHECK(all["as_of"] == "1970-01-01T00:00:10.000Z");
    CHECK(all["truncated"] == false);

    const json acme = json::parse(*queues_json(report, std::string("acme")));
    REQUIRE(acme["queues"].size() == 1);  // "secret" is beta's alone and has no worker
    CHECK(acme["queues"][0] == json{{"type", "echo"}, {"workers", 2}, {"queued", 3}, {"scheduled", 1},
                                     {"running", 2}, {"oldest_queued_age_s", 1.0}, {"succeeded_last_minute", 5},
                                     {"failed_last_minute", 1}});
    const json nobody = json::parse(*queues_json(report, std::string("nobody")));
    REQUIRE(nobody["queues"].size() == 1);
    CHECK(nobody["queues"][0]["queued"] == 0);
    CHECK(nobody["queues"][0]["oldest_queued_age_s"].is_null());

    const json none = json::parse(*queues_json({}, std::nullopt));
    CHECK(none["queues"].empty());
    CHECK(none["as_of"].is_null());
    CHECK_FALSE(queues_json({{"echo", "\xc1"}}, std::nullopt));
    CHECK_FALSE(queues_json({{"@meta", "\x90"}}, std::nullopt));
}

TEST_CASE("GET /v1/queues shows the budgets (a member its own tenant's) and the paused models") {
    sluice::broker::Budgets budgets{std::chrono::milliseconds(60000)};
    budgets.set_limits({{{"acme", "gpt"}, {1000, 10}}, {{"beta", "gpt"}, {500, 0}}});
    budgets.reserve("j1", "acme", "gpt", 300, 0, 0);
    const auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
    budgets.pause("gpt", now, std::chrono::milliseconds(2500));
    const std::string report = budgets.report(1000, now);

    const json all = json::parse(*queues_json({}, std::nullopt, report));
    REQUIRE(all["budgets"].size() == 2);
    CHECK(all["budgets"][0] == json{{"tenant", "acme"}, {"model", "gpt"}, {"tokens_per_minute", 1000},
                                    {"requests_per_minute", 10}, {"tokens_used", 300}, {"requests_used", 1}});
    CHECK(all["budget_window_s"] == 60.0);
    CHECK(all["paused_models"] == json::array({json{{"model", "gpt"}, {"resumes_in_s", 2.5}}}));
    const json beta = json::parse(*queues_json({}, std::string("beta"), report));
    REQUIRE(beta["budgets"].size() == 1);
    CHECK(beta["budgets"][0]["tenant"] == "beta");

    const json none = json::parse(*queues_json({}, std::nullopt));
    CHECK(none["budgets"].empty());
    CHECK(none["budget_window_s"].is_null());
    CHECK(none["paused_models"].empty());
    CHECK_FALSE(queues_json({}, std::nullopt, "Á"));
    CHECK_FALSE(queues_json({}, std::nullopt, "§""budgets"));  // a row too short
}

TEST_CASE("eta_s: the type's pace over the last minute, null without one") {
    using sluice::broker::QueueRow;
    sluice::broker::QueueRows rows;
    rows[{"echo", "acme"}] = QueueRow{3, 0, 0, 9000, 20, 0};
    rows[{"echo", "beta"}] = QueueRow{1, 0, 0, 9000, 8, 2};
    rows[{"idle", "acme"}] = QueueRow{4, 0, 0, 9000, 0, 0};
    const auto fields = sluice::broker::queue_report(10000, rows, {}, 1 << 20);
    const auto report = as_pairs(fields);
    auto field = [&](const std::string& type) {
        for (const auto& [name, value] : report)
            if (name == type) return value;
        return std::string();
    };
    // 30 jobs a minute: one every 2 s. The job at position 0 starts after the next one ends.
    CHECK(eta_seconds(field("echo"), 0) == 2);
    CHECK(eta_seconds(field("echo"), 29) == 60);
    CHECK_FALSE(eta_seconds(field("idle"), 0));
    CHECK_FALSE(eta_seconds("", 0));
    CHECK_FALSE(eta_seconds("\xc1", 0));
}
