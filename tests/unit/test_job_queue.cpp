// Queue order: higher priority first, FIFO within a priority, per job type.
#include "job_queue.hpp"

#include <doctest/doctest.h>

using sluice::broker::JobQueues;
using sluice::broker::queue_score;

TEST_CASE("FIFO within one priority") {
    JobQueues q;
    CHECK(q.push("echo", "a", 0));
    CHECK(q.push("echo", "b", 0));
    CHECK(q.push("echo", "c", 0));
    CHECK(q.pop("echo")->job_id == "a");
    CHECK(q.pop("echo")->job_id == "b");
    CHECK(q.pop("echo")->job_id == "c");
    CHECK_FALSE(q.pop("echo"));
}

TEST_CASE("higher priority runs first, arrival order breaks ties") {
    JobQueues q;
    q.push("t", "low1", 0);
    q.push("t", "high1", 9);
    q.push("t", "mid", 5);
    q.push("t", "high2", 9);
    q.push("t", "low2", 0);
    std::vector<std::string> order;
    while (auto next = q.pop("t")) order.push_back(next->job_id);
    CHECK(order == std::vector<std::string>{"high1", "high2", "mid", "low1", "low2"});
}

TEST_CASE("queues of different types are independent") {
    JobQueues q;
    q.push("a", "1", 0);
    q.push("b", "2", 9);
    CHECK(q.depth("a") == 1);
    CHECK(q.depth("b") == 1);
    CHECK(q.total() == 2);
    CHECK(q.pop("a")->job_id == "1");
    CHECK_FALSE(q.pop("a"));
    CHECK(q.nonempty_types() == std::vector<std::string>{"b"});
    auto popped = q.pop("b");
    CHECK(popped->priority == 9);
}

TEST_CASE("remove takes a job out from the middle; duplicates are refused") {
    JobQueues q;
    q.push("t", "x", 1);
    q.push("t", "y", 1);
    q.push("t", "z", 1);
    CHECK_FALSE(q.push("t", "y", 3));
    CHECK(q.remove("y"));
    CHECK_FALSE(q.remove("y"));
    CHECK_FALSE(q.contains("y"));
    CHECK(q.pop("t")->job_id == "x");
    CHECK(q.pop("t")->job_id == "z");
    CHECK(q.total() == 0);
    CHECK(q.nonempty_types().empty());
}

TEST_CASE("Redis scores sort like the in-memory queue") {
    CHECK(queue_score(9, 2000) < queue_score(0, 1000));
    CHECK(queue_score(5, 1000) < queue_score(5, 1001));
    CHECK(queue_score(0, 1'800'000'000'000) < queue_score(0, 1'800'000'000'001));
}
