// Unit tests of the connection limits (api/connection_counts.hpp): per client, in total, the
// reserve for clients holding few connections, a trusted proxy's connections, release by
// ticket, and who counts as one client.
#include "connection_counts.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace sluice::api;
using Admission = ConnectionCounts::Admission;
using Ticket = ConnectionCounts::Ticket;
namespace ip = boost::asio::ip;

namespace {

ClientKey key(const char* address) { return client_key(ip::make_address(address)); }

// `count` connections of `client`, which the limits must admit.
std::vector<Ticket> hold(ConnectionCounts& counts, const char* client, int count) {
    std::vector<Ticket> held(count);
    for (auto& ticket : held) REQUIRE(counts.admit(key(client), ticket) == Admission::ADMITTED);
    return held;
}

}  // namespace

TEST_CASE("connections: who counts as one client") {
    CHECK(key("127.0.0.1") == key("::ffff:127.0.0.1"));
    CHECK_FALSE(key("127.0.0.1") == key("127.0.0.2"));
    CHECK(key("2001:db8:1:2:aaaa::1") == key("2001:db8:1:2:bbbb::2"));  // one /64
    CHECK_FALSE(key("2001:db8:1:2::1") == key("2001:db8:1:3::1"));
}

TEST_CASE("connections: per-client limit, released by the ticket") {
    ConnectionCounts counts({.total = 100, .per_client = 3, .reserve = 10, .reserve_client = 2});
    std::vector<Ticket> held = hold(counts, "10.0.0.1", 3);
    Ticket refused;
    CHECK(counts.admit(key("10.0.0.1"), refused) == Admission::CLIENT_FULL);
    CHECK(counts.admit(key("10.0.0.2"), refused) == Admission::ADMITTED);  // another client
    CHECK(counts.total() == 4);
    CHECK(counts.held(key("10.0.0.1")) == 3);
    held.pop_back();
    CHECK(counts.held(key("10.0.0.1")) == 2);
    Ticket again;
    CHECK(counts.admit(key("10.0.0.1"), again) == Admission::ADMITTED);
    Ticket moved = std::move(again);  // a moved ticket counts once
    CHECK(counts.total() == 4);
    refused = Ticket();
    held.clear();
    moved = Ticket();
    CHECK(counts.total() == 0);
    CHECK(counts.held(key("10.0.0.1")) == 0);
}

TEST_CASE("connections: the reserve goes to clients holding few; past the total nobody gets in") {
    ConnectionCounts counts({.total = 10, .per_client = 8, .reserve = 4, .reserve_client = 2});
    std::vector<Ticket> big = hold(counts, "10.0.0.1", 6);
    // 6 open: the next 4 slots are the reserve. The big client gets none, small ones do.
    Ticket t;
    CHECK(counts.admit(key("10.0.0.1"), t) == Admission::SERVER_FULL);
    std::vector<Ticket> small = hold(counts, "10.0.0.2", 2);
    CHECK(counts.admit(key("10.0.0.2"), t) == Admission::SERVER_FULL);  // holds 2 now
    small.push_back(std::move(hold(counts, "10.0.0.3", 1).front()));
    small.push_back(std::move(hold(counts, "10.0.0.4", 1).front()));
    CHECK(counts.admit(key("10.0.0.5"), t) == Admission::SERVER_FULL);  // 10 open
    CHECK(counts.total() == 10);
    big.pop_back();
    CHECK(counts.admit(key("10.0.0.5"), t) == Admission::ADMITTED);
}

TEST_CASE("connections: a trusted proxy counts in the total only, reserve included") {
    ConnectionCounts counts({.total = 10, .per_client = 2, .reserve = 4, .reserve_client = 1});
    std::vector<Ticket> proxied(9);
    for (auto& ticket : proxied) REQUIRE(counts.admit_proxy(ticket) == Admission::ADMITTED);
    CHECK(counts.total() == 9);
    Ticket t;
    CHECK(counts.admit(key("10.0.0.1"), t) == Admission::ADMITTED);  // a small client: the last slot
    Ticket over;
    CHECK(counts.admit_proxy(over) == Admission::SERVER_FULL);
    CHECK(counts.total() == 10);
    proxied.clear();
    CHECK(counts.total() == 1);
    CHECK(counts.held(key("10.0.0.1")) == 1);
}

TEST_CASE("connections: shards admitting and closing at once keep exact counts") {
    ConnectionCounts counts({.total = 1000, .per_client = 1000, .reserve = 0, .reserve_client = 0});
    std::atomic<int> refused{0};
    auto churn = [&counts, &refused](int base) {
        for (int round = 0; round < 20000; ++round) {
            Ticket a, b;
            if (counts.admit(key(round % 2 ? "10.0.0.1" : "10.0.0.2"), a) != Admission::ADMITTED) ++refused;
            const std::string other = "10.1.0." + std::to_string(base + round % 50);
            if (counts.admit(key(other.c_str()), b) != Admission::ADMITTED) ++refused;
        }
    };
    std::thread first(churn, 0), second(churn, 100);
    first.join();
    second.join();
    CHECK(refused == 0);
    CHECK(counts.total() == 0);
    CHECK(counts.held(key("10.0.0.1")) == 0);
}
