// The broker's schedule: jobs held until due, the earliest first, counted per type and tenant
// (what SLUICE_MAX_QUEUE_DEPTH, SLUICE_TENANT_MAX_QUEUED and the queue report see); and the
// queue report's last-minute counts and its bound in bytes.
#include "queue_report.hpp"
#include "schedule.hpp"

#include <doctest/doctest.h>
#include <msgpack.hpp>

using namespace sluice::broker;

TEST_CASE("the schedule gives the earliest due time and counts per type and tenant") {
    Schedule s;
    CHECK_FALSE(s.next_due());
    CHECK(s.add("j1", "echo", "acme", 3000));
    CHECK(s.add("j2", "echo", "beta", 1000));
    CHECK(s.add("j3", "sleep", "acme", 2000));
    CHECK_FALSE(s.add("j1", "echo", "acme", 10));  // held already: nothing changes
    CHECK(s.next_due() == 1000);
    CHECK(s.size() == 3);
    CHECK(s.of_type("echo") == 2);
    CHECK(s.of_tenant("acme") == 2);
    CHECK(s.of_tenant("nobody") == 0);
    CHECK(s.counts().at({"echo", "acme"}) == 1);
    // Queued (or canceled, or expired): the next one is due next, and the counts follow.
    CHECK(s.remove("j2"));
    CHECK_FALSE(s.remove("j2"));
    CHECK(s.next_due() == 2000);
    CHECK(s.of_tenant("beta") == 0);
    CHECK(s.counts().count({"echo", "beta"}) == 0);
    CHECK(s.remove("j3"));
    CHECK(s.remove("j1"));
    CHECK_FALSE(s.next_due());
    CHECK(s.counts().empty());
}

TEST_CASE("jobs due at the same millisecond are all held") {
    Schedule s;
    for (int i = 0; i < 5; ++i) CHECK(s.add("j" + std::to_string(i), "echo", "acme", 1000));
    CHECK(s.of_type("echo") == 5);
    CHECK(s.remove("j3"));
    CHECK(s.next_due() == 1000);
    CHECK(s.size() == 4);
}

TEST_CASE("outcomes count over the last 60 seconds only") {
    RecentOutcomes r;
    r.record("echo", "acme", true, 100);
    r.record("echo", "acme", true, 130);
    r.record("echo", "acme", false, 159);
    r.record("echo", "beta", true, 159);
    auto at = [&](std::int64_t s) { return r.last_minute("echo", "acme", s); };
    CHECK(at(159).succeeded == 2);
    CHECK(at(159).failed == 1);
    CHECK(at(160).succeeded == 1);  // second 100 has left the window
    CHECK(at(189).succeeded == 1);
    CHECK(at(190).succeeded == 0);
    CHECK(at(218).failed == 1);
    CHECK(at(219).failed == 0);
    // A bucket reused a minute later starts from zero.
    r.record("echo", "acme", true, 220);
    CHECK(at(220).succeeded == 1);
    // take_last_minute forgets pairs with nothing left in the window.
    auto left = r.take_last_minute(220);
    CHECK(left.size() == 1);
    CHECK(left.count({"echo", "acme"}) == 1);
    CHECK(r.last_minute("echo", "beta", 220).succeeded == 0);
}

namespace {

msgpack::object_handle unpack(const std::string& bytes) { return msgpack::unpack(bytes.data(), bytes.size()); }

}  // namespace

TEST_CASE("the queue report has a field per type and stops its rows at its bound") {
    QueueRows rows;
    rows[{"echo", "acme"}] = QueueRow{3, 1, 2, 1000, 5, 1};
    rows[{"echo", "beta"}] = QueueRow{0, 0, 1, 0, 0, 0};
    rows[{"sleep", "acme"}] = QueueRow{1, 0, 0, 2000, 0, 0};
    const std::map<std::string, std::size_t> workers{{"echo", 2}, {"idle", 1}};
    auto fields = queue_report(5000, rows, workers, 1 << 20);
    REQUIRE(fields.size() == 8);  // meta, echo, idle, sleep
    CHECK(fields[0] == META_FIELD);
    CHECK(fields[2] == "echo");
    CHECK(fields[4] == "idle");
    CHECK(fields[6] == "sleep");
    // Each handle owns the memory its objects point into: it lives as long as they are read.
    const auto echo_handle = unpack(fields[3]);
    auto echo = echo_handle.get().as<std::map<std::string, msgpack::object>>();
    CHECK(echo.at("workers").as<int>() == 2);
    auto tenants = echo.at("tenants").as<std::vector<msgpack::object>>();
    REQUIRE(tenants.size() == 2);
    auto acme = tenants[0].as<std::vector<msgpack::object>>();
    CHECK(acme[0].as<std::string>() == "acme");
    CHECK(acme[1].as<int>() == 3);
    CHECK(acme[4].as<std::int64_t>() == 1000);
    const auto meta_handle = unpack(fields[1]);
    auto meta = meta_handle.get().as<std::map<std::string, msgpack::object>>();
    CHECK(meta.at("as_of_ms").as<std::int64_t>() == 5000);
    CHECK_FALSE(meta.at("truncated").as<bool>());

    // 1000 rows do not fit in 4096 bytes: the report holds those that do, and says so.
    QueueRows many;
    for (int i = 0; i < 1000; ++i) many[{"echo", "tenant-" + std::to_string(1000 + i)}] = QueueRow{1, 0, 0, 1, 0, 0};
    auto bounded = queue_report(5000, many, {}, 4096);
    std::size_t bytes = 0;
    for (std::size_t i = 3; i < bounded.size(); i += 2) bytes += bounded[i].size();
    CHECK(bytes <= 4096 + 16);  // the rows within the bound, plus the type's map header
    const auto cut_handle = unpack(bounded[1]);
    auto cut = cut_handle.get().as<std::map<std::string, msgpack::object>>();
    CHECK(cut.at("truncated").as<bool>());
    const auto kept_handle = unpack(bounded[3]);
    auto kept = kept_handle.get().as<std::map<std::string, msgpack::object>>();
    CHECK(kept.at("tenants").as<std::vector<msgpack::object>>().size() < 1000);
}
