// Followers: which jobs a shard renews in K.followed, and when a job stops being followed.
#include "followers.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using sluice::api::Followers;

TEST_CASE("a job counts as followed until its last ticket goes") {
    Followers followers;
    {
        Followers::Ticket first = followers.follow("a", 10000);
        {
            Followers::Ticket second = followers.follow("a", 10000);
            CHECK(followers.size() == 1);
        }
        CHECK(followers.size() == 1);
        Followers::Ticket moved = std::move(first);
        CHECK(followers.size() == 1);
    }
    CHECK(followers.size() == 0);
    CHECK(followers.renewals(1).empty());
}

TEST_CASE("a job without a grace is not counted") {
    Followers followers;
    Followers::Ticket ticket = followers.follow("a", 0);
    CHECK(followers.size() == 0);
}

TEST_CASE("assigning a ticket releases the one it held") {
    Followers followers;
    Followers::Ticket ticket = followers.follow("a", 2000);
    ticket = followers.follow("b", 2000);
    CHECK(followers.size() == 1);
    ticket = {};
    CHECK(followers.size() == 0);
}

TEST_CASE("renewals push now + grace with XX GT, in commands of bounded size") {
    Followers followers;
    Followers::Ticket a = followers.follow("a", 2000);
    const auto one = followers.renewals(1000);
    REQUIRE(one.size() == 1);
    CHECK(one[0] == std::vector<std::string>{"ZADD", "sluice:followed", "XX", "GT", "3000", "a"});

    std::vector<Followers::Ticket> many;
    for (std::size_t i = 0; i < Followers::MEMBERS_PER_COMMAND * 2; ++i)
        many.push_back(followers.follow("job-" + std::to_string(i), 5000));
    const auto commands = followers.renewals(0);
    REQUIRE(commands.size() == 3);
    std::size_t members = 0;
    for (const auto& command : commands) {
        CHECK(command.size() <= 4 + 2 * Followers::MEMBERS_PER_COMMAND);
        members += (command.size() - 4) / 2;
    }
    CHECK(members == Followers::MEMBERS_PER_COMMAND * 2 + 1);
}
