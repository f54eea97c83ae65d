// Finding the Redis master through Sentinel (common/sentinel.hpp): the sentinel list, the
// answers of SENTINEL get-master-addr-by-name and ROLE, +switch-master, and the asking order.
#include "sentinel.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <deque>

using namespace sluice::sentinel;

namespace {

// hiredis replies built by hand, kept alive by the deque (element pointers stay valid).
struct Replies {
    std::deque<redisReply> replies;
    std::deque<std::vector<redisReply*>> arrays;

    redisReply* text(const char* s, int type = REDIS_REPLY_STRING) {
        redisReply& r = replies.emplace_back();
        std::memset(&r, 0, sizeof r);
        r.type = type;
        r.str = const_cast<char*>(s);
        r.len = std::strlen(s);
        return &r;
    }
    redisReply* nil() {
        redisReply& r = replies.emplace_back();
        std::memset(&r, 0, sizeof r);
        r.type = REDIS_REPLY_NIL;
        return &r;
    }
    redisReply* array(std::vector<redisReply*> items) {
        auto& elements = arrays.emplace_back(std::move(items));
        redisReply& r = replies.emplace_back();
        std::memset(&r, 0, sizeof r);
        r.type = REDIS_REPLY_ARRAY;
        r.elements = elements.size();
        r.element = elements.data();
        return &r;
    }
};

}  // namespace

TEST_CASE("a sentinel list is host:port items, IPv6 in brackets") {
    std::string bad;
    auto list = parse_list(" 10.0.0.1:26379, redis-b.internal:26380 ,[::1]:26381,", bad);
    REQUIRE(list);
    CHECK(*list == std::vector<Address>{{"10.0.0.1", 26379}, {"redis-b.internal", 26380}, {"::1", 26381}});
}

TEST_CASE("a sentinel list refuses what is not an address") {
    for (const char* text : {"10.0.0.1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:26379x", ":26379",
                             "::1:26379", "a b:26379", "10.0.0.1:-1", "h/x:1"}) {
        std::string bad;
        CHECK_MESSAGE(!parse_list(text, bad), text);
        CHECK(bad == text);
    }
    std::string bad;
    CHECK(!parse_list(" , ", bad));
    CHECK(bad.empty());
    CHECK(!parse_address(std::string(MAX_HOST + 1, 'h') + ":1"));
    std::string many;
    for (std::size_t i = 0; i <= MAX_SENTINELS; ++i) many += "h:" + std::to_string(i + 1) + ",";
    CHECK(!parse_list(many, bad));
}

TEST_CASE("get-master-addr-by-name: host and port, or nothing") {
    Replies r;
    auto addr = master_from_reply(r.array({r.text("127.0.0.1"), r.text("6399")}));
    REQUIRE(addr);
    CHECK(*addr == Address{"127.0.0.1", 6399});
    CHECK(!master_from_reply(nullptr));
    CHECK(!master_from_reply(r.nil()));  // the sentinel does not monitor that name
    CHECK(!master_from_reply(r.text("ERR no such master", REDIS_REPLY_ERROR)));
    CHECK(!master_from_reply(r.array({r.text("127.0.0.1")})));
    CHECK(!master_from_reply(r.array({r.text("127.0.0.1"), r.text("port")})));
    CHECK(!master_from_reply(r.array({r.text(""), r.text("6399")})));
    CHECK(!master_from_reply(r.array({r.text("127.0.0.1"), r.text("6399"), r.text("x")})));
}

TEST_CASE("take_master moves to the master a sentinel names, and only then") {
    Replies r;
    Rotation rotation({{"a", 1}, {"b", 2}});
    std::string host = "127.0.0.1";
    int port = 6399;
    CHECK_FALSE(take_master(r.nil(), "sluice", "sentinel a:1", rotation, host, port));
    CHECK(host == "127.0.0.1");
    CHECK(port == 6399);
    CHECK(rotation.failed());  // the caller moves on after a refusal
    CHECK(take_master(r.array({r.text("10.0.0.2"), r.text("6400")}), "sluice", "sentinel b:2", rotation, host, port));
    CHECK(host == "10.0.0.2");
    CHECK(port == 6400);
    CHECK(rotation.current().host == "b");
}

TEST_CASE("+switch-master names the new master of the master asked about") {
    auto addr = switched_master("sluice 10.0.0.1 6399 10.0.0.2 6400", "sluice");
    REQUIRE(addr);
    CHECK(*addr == Address{"10.0.0.2", 6400});
    CHECK(!switched_master("other 10.0.0.1 6399 10.0.0.2 6400", "sluice"));
    CHECK(!switched_master("sluice 10.0.0.1 6399 10.0.0.2", "sluice"));
    CHECK(!switched_master("sluice 10.0.0.1 6399 10.0.0.2 6400 extra", "sluice"));
    CHECK(!switched_master("sluice 10.0.0.1 6399 10.0.0.2 99999", "sluice"));
    CHECK(!switched_master("", "sluice"));
}

TEST_CASE("ROLE: only a master is written to") {
    Replies r;
    CHECK(is_master_role(r.array({r.text("master")})));
    CHECK(!is_master_role(r.array({r.text("slave"), r.text("10.0.0.1")})));
    CHECK(!is_master_role(r.array({r.text("sentinel")})));
    CHECK(!is_master_role(r.array({})));
    CHECK(!is_master_role(r.text("NOPERM", REDIS_REPLY_ERROR)));
    CHECK(!is_master_role(nullptr));
    CHECK(role_of(r.array({r.text("slave"), r.text("10.0.0.1")})) == "slave");
    CHECK(role_of(r.text("NOPERM no", REDIS_REPLY_ERROR)) == "NOPERM no");
    CHECK(role_of(r.array({})) == "no answer");
    CHECK(role_of(nullptr) == "no answer");
}

TEST_CASE("rotation: each sentinel once per round, the last to answer first") {
    Rotation rotation({{"a", 1}, {"b", 2}, {"c", 3}});
    CHECK(rotation.current().host == "a");
    CHECK(rotation.failed());
    CHECK(rotation.current().host == "b");
    rotation.answered();
    CHECK(rotation.current().host == "b");  // b answered: asked first again
    CHECK(rotation.failed());
    CHECK(rotation.failed());
    CHECK_FALSE(rotation.failed());  // b, c and a all failed: the round is over
    CHECK(rotation.current().host == "b");
    Rotation one({{"a", 1}});
    CHECK_FALSE(one.failed());
    CHECK(one.current().host == "a");
}
