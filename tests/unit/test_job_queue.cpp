// Queue order: per job type, tenants in turn (by weight), within a tenant higher priority first,
// then FIFO; a tenant at its running limit is passed over, and so are the jobs of a concurrency
// key at its limit until the key is woken.
#include "job_queue.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <initializer_list>
#include <string>
#include <vector>

using sluice::broker::JobQueues;
using sluice::broker::Owner;
using sluice::broker::QueuePolicy;
using sluice::broker::queue_score;
using sluice::broker::RunningCounts;

namespace {

const Owner ACME{"acme", "", 0};
const Owner BETA{"beta", "", 0};
const RunningCounts NONE_RUNNING;

// The id of the `n`th job of a tenant whose ids start with `prefix`.
std::string nth(const char* prefix, int n) { return fmt::format("{}{}", prefix, n); }

// Queues of type "t" holding `jobs`, pushed in this order.
struct Push {
    const char* job_id;
    int priority;
    Owner owner;
};
JobQueues queued(std::initializer_list<Push> jobs) {
    JobQueues q;
    for (const Push& job : jobs) q.push("t", job.job_id, job.priority, job.owner, 0);
    return q;
}

// Pops `type` until nothing may start; returns the ids in the order they came.
std::vector<std::string> drain(JobQueues& q, const std::string& type, const RunningCounts& running = NONE_RUNNING) {
    std::vector<std::string> order;
    while (auto next = q.pop(type, running)) order.push_back(next->job_id);
    return order;
}

}  // namespace

TEST_CASE("FIFO within one priority") {
    JobQueues q;
    CHECK(q.push("echo", "a", 0, ACME, 0));
    CHECK(q.push("echo", "b", 0, ACME, 0));
    CHECK(q.push("echo", "c", 0, ACME, 0));
    CHECK(drain(q, "echo") == std::vector<std::string>{"a", "b", "c"});
    CHECK_FALSE(q.pop("echo", NONE_RUNNING));
}

TEST_CASE("higher priority runs first, arrival order breaks ties") {
    JobQueues q = queued(
        {{"low1", 0, ACME}, {"high1", 9, ACME}, {"mid", 5, ACME}, {"high2", 9, ACME}, {"low2", 0, ACME}});
    CHECK(drain(q, "t") == std::vector<std::string>{"high1", "high2", "mid", "low1", "low2"});
}

TEST_CASE("queues of different types are independent") {
    JobQueues q;
    q.push("a", "1", 0, ACME, 0);
    q.push("b", "2", 9, ACME, 0);
    CHECK(q.depth("a") == 1);
    CHECK(q.depth("b") == 1);
    CHECK(q.total() == 2);
    CHECK(q.pop("a", NONE_RUNNING)->job_id == "1");
    CHECK_FALSE(q.pop("a", NONE_RUNNING));
    CHECK(q.nonempty_types() == std::vector<std::string>{"b"});
    auto popped = q.pop("b", NONE_RUNNING);
    CHECK(popped->priority == 9);
    CHECK(popped->owner.tenant == "acme");
}

TEST_CASE("remove takes a job out from the middle; duplicates are refused") {
    JobQueues q;
    q.push("t", "x", 1, ACME, 0);
    q.push("t", "y", 1, ACME, 0);
    q.push("t", "z", 1, ACME, 0);
    CHECK_FALSE(q.push("t", "y", 3, BETA, 0));
    CHECK(q.remove("y"));
    CHECK_FALSE(q.remove("y"));
    CHECK_FALSE(q.contains("y"));
    CHECK(drain(q, "t") == std::vector<std::string>{"x", "z"});
    CHECK(q.total() == 0);
    CHECK(q.nonempty_types().empty());
}

TEST_CASE("tenants take turns: a backlog holds a newcomer back by at most one job") {
    JobQueues q;
    for (int i = 0; i < 1000; ++i) q.push("t", nth("a", i), 0, ACME, 0);
    CHECK(q.pop("t", NONE_RUNNING)->job_id == "a0");
    q.push("t", "b0", 0, BETA, 0);
    q.push("t", "b1", 0, BETA, 0);
    CHECK(q.pop("t", NONE_RUNNING)->job_id == "a1");
    CHECK(q.pop("t", NONE_RUNNING)->job_id == "b0");
    CHECK(q.pop("t", NONE_RUNNING)->job_id == "a2");
    CHECK(q.pop("t", NONE_RUNNING)->job_id == "b1");
    // Beta is out of jobs: acme has every turn again.
    CHECK(q.pop("t", NONE_RUNNING)->job_id == "a3");
    CHECK(q.pop("t", NONE_RUNNING)->job_id == "a4");
    CHECK(q.depth("t") == 995);
}

TEST_CASE("a tenant's depth counts its queued jobs of every type") {
    JobQueues q;
    q.push("t", "a1", 0, ACME, 0);
    q.push("u", "a2", 0, ACME, 0);
    q.push("t", "b1", 0, BETA, 0);
    CHECK(q.tenant_depth("acme") == 2);
    CHECK(q.pop("u", NONE_RUNNING)->job_id == "a2");
    CHECK(q.remove("b1"));
    CHECK(q.tenant_depth("acme") == 1);
    CHECK(q.tenant_depth("beta") == 0);
    CHECK(q.tenant_depth("nobody") == 0);
}

TEST_CASE("a newcomer joins at the end of the round: one turn of each tenant already waiting") {
    JobQueues q;
    for (const char* tenant : {"t1", "t2", "t3"}) {
        q.push("t", std::string(tenant) + "-a", 0, Owner{tenant, "", 0}, 0);
        q.push("t", std::string(tenant) + "-b", 0, Owner{tenant, "", 0}, 0);
    }
    CHECK(q.pop("t", NONE_RUNNING)->job_id == "t1-a");
    q.push("t", "new", 9, Owner{"t4", "", 0}, 0);
    CHECK(drain(q, "t") == std::vector<std::string>{"t2-a", "t3-a", "t1-b", "new", "t2-b", "t3-b"});
}

TEST_CASE("priority orders jobs within a tenant, not across tenants") {
    JobQueues q =
        queued({{"acme-low", 0, ACME}, {"acme-high", 9, ACME}, {"beta-high", 9, BETA}, {"beta-low", 0, BETA}});
    CHECK(drain(q, "t") == std::vector<std::string>{"acme-high", "beta-high", "acme-low", "beta-low"});
}

TEST_CASE("a tenant's weight is the jobs it takes per turn") {
    JobQueues q(QueuePolicy{{{"acme", 3}}, sluice::broker::NO_LIMIT});
    for (int i = 0; i < 6; ++i) {
        q.push("t", nth("a", i), 0, ACME, 0);
        q.push("t", nth("b", i), 0, BETA, 0);
    }
    CHECK(drain(q, "t") ==
          std::vector<std::string>{"a0", "a1", "a2", "b0", "a3", "a4", "a5", "b1", "b2", "b3", "b4", "b5"});
}

TEST_CASE("a tenant at its running limit is passed over without holding the others up") {
    JobQueues q(QueuePolicy{{}, 2});
    for (int i = 0; i < 5; ++i) q.push("t", nth("a", i), 0, ACME, 0);
    q.push("t", "b0", 0, BETA, 0);
    RunningCounts running;
    auto start = [&] {
        auto next = q.pop("t", running);
        if (next) running.add(next->owner);
        return next ? next->job_id : std::string("none");
    };
    CHECK(start() == "a0");
    CHECK(start() == "b0");
    CHECK(start() == "a1");
    CHECK(start() == "none");  // acme runs 2, beta has nothing queued
    CHECK(q.depth("t") == 3);
    running.remove(ACME);
    CHECK(start() == "a2");
    CHECK(start() == "none");
}

// Pops and runs jobs of `q` as a dispatcher would: every job popped counts as running.
struct Dispatcher {
    JobQueues& q;
    RunningCounts running;

    std::string start(const std::string& type = "t") {
        auto next = q.pop(type, running);
        if (!next) return "none";
        running.add(next->owner);
        return next->job_id;
    }
    // A job of `owner` ends; the keys it freed are woken.
    void end(const Owner& owner) {
        running.remove(owner);
        for (const auto& key : running.take_freed()) q.wake(key);
    }
};

TEST_CASE("jobs sharing a concurrency key wait while it runs its limit; other keys and tenants go on") {
    const Owner shared{"acme", "user:1", 1}, other{"acme", "user:2", 1}, beta_shared{"beta", "user:1", 1};
    JobQueues q;
    for (const char* id : {"s1", "s2", "s3"}) q.push("t", id, 0, shared, 0);
    q.push("t", "o1", 0, other, 0);
    q.push("t", "plain", 0, ACME, 0);
    q.push("t", "b1", 0, beta_shared, 0);
    Dispatcher d{q, {}};
    CHECK(d.start() == "s1");
    CHECK(d.start() == "b1");     // the same key of another tenant is another key
    CHECK(d.start() == "o1");     // s2 waits for s1; acme's next job runs
    CHECK(d.start() == "plain");
    CHECK(d.start() == "none");
    CHECK(q.depth("t") == 2);
    d.end(other);                 // another key ending wakes nothing of user:1
    CHECK(d.start() == "none");
    d.end(shared);
    CHECK(d.start() == "s2");
    CHECK(d.start() == "none");
    d.end(shared);
    CHECK(d.start() == "s3");
}

TEST_CASE("the limit of the key's next job decides how many of the key may run") {
    JobQueues q;
    q.push("t", "a", 0, Owner{"acme", "k", 2}, 0);
    q.push("t", "b", 0, Owner{"acme", "k", 2}, 0);
    q.push("t", "c", 0, Owner{"acme", "k", 3}, 0);
    q.push("t", "d", 0, Owner{"acme", "k", 1}, 0);
    Dispatcher d{q, {}};
    CHECK(d.start() == "a");
    CHECK(d.start() == "b");
    CHECK(d.start() == "c");  // two run, c allows three
    CHECK(d.start() == "none");
    d.end(Owner{"acme", "k", 2});
    CHECK(d.start() == "none");  // two still run, d allows one
    d.end(Owner{"acme", "k", 2});
    d.end(Owner{"acme", "k", 3});
    CHECK(d.start() == "d");
}

TEST_CASE("a key is shared across job types; parked jobs can be removed and pushed to") {
    const Owner shared{"acme", "k", 1};
    JobQueues q;
    q.push("t", "t1", 0, shared, 0);
    q.push("u", "u1", 0, shared, 0);
    q.push("u", "u2", 5, shared, 0);
    Dispatcher d{q, {}};
    CHECK(d.start("t") == "t1");
    CHECK(d.start("u") == "none");  // u2 (priority 5) and u1 park behind the running t1
    CHECK(q.remove("u2"));
    q.push("u", "u3", 9, shared, 0);
    CHECK(d.start("u") == "none");
    d.end(shared);
    CHECK(d.start("u") == "u3");
    CHECK(q.remove("u1"));
    CHECK(q.total() == 0);
    d.end(shared);  // waking a key with nothing parked is harmless
    CHECK(d.start("u") == "none");
}

TEST_CASE("Redis scores sort like the in-memory queue") {
    CHECK(queue_score(9, 2000) < queue_score(0, 1000));
    CHECK(queue_score(5, 1000) < queue_score(5, 1001));
    CHECK(queue_score(0, 1'800'000'000'000) < queue_score(0, 1'800'000'000'001));
}

TEST_CASE("the backlog gives each type and tenant its count and its oldest job's time") {
    JobQueues q;
    q.push("t", "a1", 0, ACME, 500);
    q.push("t", "a2", 9, ACME, 100);  // jumps the queue, and is the oldest
    q.push("t", "b1", 0, BETA, 300);
    q.push("u", "a3", 0, Owner{"acme", "k", 1}, 700);
    auto backlog = q.backlog();
    REQUIRE(backlog.size() == 3);
    CHECK(backlog[0].type == "t");
    CHECK(backlog[0].tenant == "acme");
    CHECK(backlog[0].queued == 2);
    CHECK(backlog[0].oldest_ms == 100);
    CHECK(backlog[1].tenant == "beta");
    CHECK(backlog[1].oldest_ms == 300);
    CHECK(backlog[2].type == "u");
    CHECK(backlog[2].oldest_ms == 700);
    // Popping the oldest makes the next one the oldest; a popped job keeps its time.
    auto first = q.pop("t", NONE_RUNNING);
    CHECK(first->job_id == "a2");
    CHECK(first->enqueued_ms == 100);
    CHECK(q.backlog()[0].oldest_ms == 500);  // acme's oldest left: a1 is its oldest now
    CHECK(q.remove("a3"));
    for (const auto& entry : q.backlog()) CHECK(entry.type == "t");
}
