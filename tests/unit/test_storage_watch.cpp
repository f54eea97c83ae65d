// Unit tests of the broker's storage watch (broker/storage_watch.hpp): reading INFO memory, and
// when new jobs are refused.
#include "storage_watch.hpp"

#include <doctest/doctest.h>

using namespace sluice::broker;

TEST_CASE("INFO memory: used_memory and maxmemory, not their look-alikes") {
    const auto use = parse_info_memory(
        "# Memory\r\nused_memory_human:1.2M\r\nused_memory:1234567\r\nused_memory_rss:9999999\r\n"
        "maxmemory_human:2.00M\r\nmaxmemory:2097152\r\nmaxmemory_policy:noeviction\r\n");
    REQUIRE(use);
    CHECK(use->used == 1234567);
    CHECK(use->max == 2097152);
    CHECK_FALSE(parse_info_memory("used_memory:12\r\n"));
    CHECK_FALSE(parse_info_memory("used_memory:x\r\nmaxmemory:0\r\n"));
    CHECK_FALSE(parse_info_memory(""));
}

TEST_CASE("full past the mark, not full again only below the mark minus the relief") {
    StorageWatch watch(90);
    CHECK_FALSE(watch.update({800, 1000}));
    CHECK_FALSE(watch.full());
    CHECK(watch.update({900, 1000}));
    CHECK(watch.full());
    CHECK_FALSE(watch.update({860, 1000}));  // within the relief band: still full
    CHECK(watch.full());
    CHECK(watch.update({849, 1000}));
    CHECK_FALSE(watch.full());
    CHECK(watch.update({950, 1000}));
    CHECK(watch.update({950, 0}));  // maxmemory removed: no limit, never full
    CHECK_FALSE(watch.full());
    CHECK(watch.last().used == 950);
}
