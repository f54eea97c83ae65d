// Job bookkeeping on a fake clock: leases expire, stale attempts are fenced off, a lost
// worker's jobs come back, retries back off and are released when due.
#include "job_table.hpp"

#include <doctest/doctest.h>

using namespace sluice::broker;
using namespace std::chrono_literals;

namespace {

const Clock::time_point T0{};  // the fake clock's start
const Owner ACME{"acme", "", 0};

// A pool with one worker "a" of concurrency 4 and a table over it.
struct Fixture {
    WorkerPool pool;
    JobTable jobs{pool, Backoff{1000ms, 60000ms}, 42};
    WorkerInfo& a = pool.ready("a", "worker-a", "cpp", {"echo"}, 4, T0);

    // Hands `job_id` of `owner` to `worker` and records its start as `attempt`, leased until
    // `deadline`.
    void run(WorkerInfo& worker, const std::string& job_id, std::uint32_t attempt, Clock::time_point deadline,
             const Owner& owner = ACME) {
        jobs.assign(worker, job_id, "echo", 0, owner);
        REQUIRE(jobs.started(job_id, worker.identity, attempt, deadline));
    }
};

}  // namespace

TEST_CASE("a lease expires at its deadline; the worker keeps the slot until it answers") {
    Fixture f;
    f.run(f.a, "j1", 1, T0 + 10s);
    f.jobs.assign(f.a, "j2", "echo", 0, ACME);  // attempt 0: its START is in flight, no lease yet
    CHECK(f.jobs.expire_leases(T0 + 9s).empty());
    auto expired = f.jobs.expire_leases(T0 + 10s);
    REQUIRE(expired.size() == 1);
    CHECK(expired[0].job_id == "j1");
    CHECK(expired[0].run.attempt == 1);
    CHECK(f.jobs.expire_leases(T0 + 1h).empty());
    CHECK(f.jobs.running() == 1);
    CHECK(f.a.jobs.size() == 2);
    // The late answer is stale but frees the slot the expired attempt held.
    CHECK_FALSE(f.jobs.finish("a", "j1", 1));
    CHECK(f.a.jobs == std::set<std::string>{"j2"});
}

TEST_CASE("expiring pops only the due leases, and a finished, canceled or lost job leaves none behind") {
    Fixture f;
    WorkerInfo& b = f.pool.ready("b", "worker-b", "cpp", {"echo"}, 4, T0);
    f.run(f.a, "due1", 1, T0 + 1s);
    f.run(f.a, "due2", 1, T0 + 2s);
    f.run(f.a, "later", 1, T0 + 5s);
    f.run(f.a, "finished", 1, T0 + 1s);
    f.run(f.a, "canceled", 1, T0 + 1s);
    f.run(b, "lost", 1, T0 + 1s);
    REQUIRE(f.jobs.finish("a", "finished", 1));
    REQUIRE(f.jobs.cancel("canceled"));
    REQUIRE(f.jobs.lose(*f.pool.find("b")).size() == 1);

    auto expired = f.jobs.expire_leases(T0 + 3s);
    REQUIRE(expired.size() == 2);
    CHECK(expired[0].job_id == "due1");
    CHECK(expired[1].job_id == "due2");
    CHECK(f.jobs.running() == 1);
    CHECK(f.jobs.expire_leases(T0 + 5s).at(0).job_id == "later");
}

TEST_CASE("a new attempt of the job replaces the old lease") {
    Fixture f;
    f.run(f.a, "j", 1, T0 + 1s);
    REQUIRE(f.jobs.expire_leases(T0 + 1s).size() == 1);
    f.run(f.a, "j", 2, T0 + 20s);
    CHECK(f.jobs.expire_leases(T0 + 10s).empty());
    CHECK(f.jobs.expire_leases(T0 + 20s).at(0).run.attempt == 2);
}

TEST_CASE("fencing: a stale attempt's report is refused") {
    Fixture f;
    WorkerInfo& b = f.pool.ready("b", "worker-b", "cpp", {"echo"}, 4, T0);
    f.run(f.a, "j", 3, T0 + 10s);
    CHECK(f.jobs.current("a", "j", 3) != nullptr);
    CHECK(f.jobs.current("a", "j", 2) == nullptr);
    CHECK(f.jobs.current("b", "j", 3) == nullptr);
    CHECK(f.jobs.current("a", "other", 3) == nullptr);
    CHECK_FALSE(f.jobs.finish("b", "j", 3));
    CHECK(f.jobs.running() == 1);
    CHECK(b.jobs.empty());
    auto done = f.jobs.finish("a", "j", 3);
    REQUIRE(done);
    CHECK(done->identity == "a");
    CHECK(f.a.jobs.empty());
    CHECK_FALSE(f.jobs.finish("a", "j", 3));  // answered twice
}

TEST_CASE("fencing: a newer attempt on the same worker keeps its slot; on another worker the old slot is freed") {
    SUBCASE("same worker") {
        Fixture f;
        f.run(f.a, "j", 1, T0 + 1s);
        REQUIRE(f.jobs.expire_leases(T0 + 1s).size() == 1);
        f.run(f.a, "j", 2, T0 + 20s);
        CHECK_FALSE(f.jobs.finish("a", "j", 1));  // the late answer of attempt 1
        CHECK(f.a.jobs == std::set<std::string>{"j"});
        CHECK(f.jobs.current("a", "j", 2) != nullptr);
        CHECK(f.jobs.finish("a", "j", 2));
        CHECK(f.a.jobs.empty());
    }
    SUBCASE("another worker") {
        Fixture f;
        WorkerInfo& b = f.pool.ready("b", "worker-b", "cpp", {"echo"}, 4, T0);
        f.run(f.a, "j", 1, T0 + 1s);
        REQUIRE(f.jobs.expire_leases(T0 + 1s).size() == 1);
        f.run(b, "j", 2, T0 + 20s);
        CHECK_FALSE(f.jobs.finish("a", "j", 1));
        CHECK(f.a.jobs.empty());
        CHECK(b.jobs == std::set<std::string>{"j"});
    }
}

TEST_CASE("a start recorded after its job was canceled or its worker lost is refused") {
    Fixture f;
    f.jobs.assign(f.a, "canceled", "echo", 0, ACME);
    f.jobs.assign(f.a, "kept", "echo", 0, ACME);
    REQUIRE(f.jobs.cancel("canceled"));
    CHECK_FALSE(f.jobs.started("canceled", "a", 1, T0 + 1s));
    CHECK_FALSE(f.jobs.started("kept", "b", 1, T0 + 1s));
    f.jobs.unassign("kept", "a");  // its START was not stored
    CHECK(f.a.jobs == std::set<std::string>{"canceled"});
    CHECK(f.jobs.running() == 0);
}

TEST_CASE("a tenant's jobs count as running from their assignment until their attempt ends, however it ends") {
    Fixture f;
    WorkerInfo& b = f.pool.ready("b", "worker-b", "cpp", {"echo"}, 4, T0);
    const Owner beta{"beta", "", 0};
    f.jobs.assign(f.a, "starting", "echo", 0, ACME);
    f.run(f.a, "finished", 1, T0 + 60s);
    f.run(f.a, "canceled", 1, T0 + 60s);
    f.run(f.a, "expired", 1, T0 + 1s);
    f.run(b, "lost", 1, T0 + 60s);
    f.run(b, "of-beta", 1, T0 + 60s, beta);
    CHECK(f.jobs.counts().of_tenant("acme") == 5);
    CHECK(f.jobs.counts().of_tenant("beta") == 1);
    f.jobs.unassign("starting", "a");
    REQUIRE(f.jobs.finish("a", "finished", 1));
    REQUIRE(f.jobs.cancel("canceled"));
    REQUIRE(f.jobs.expire_leases(T0 + 1s).size() == 1);
    CHECK(f.jobs.counts().of_tenant("acme") == 1);
    REQUIRE(f.jobs.lose(*f.pool.find("b")).size() == 2);
    CHECK(f.jobs.counts().of_tenant("acme") == 0);
    CHECK(f.jobs.counts().of_tenant("beta") == 0);
}

TEST_CASE("jobs count per concurrency key too, and every end of one reports its key once") {
    Fixture f;
    const Owner keyed{"acme", "user:1", 2};
    f.run(f.a, "k1", 1, T0 + 60s, keyed);
    f.run(f.a, "k2", 1, T0 + 60s, keyed);
    f.run(f.a, "plain", 1, T0 + 60s);
    CHECK(f.jobs.counts().of_key("acme", "user:1") == 2);
    CHECK(f.jobs.counts().of_key("beta", "user:1") == 0);
    CHECK(f.jobs.counts().of_tenant("acme") == 3);
    REQUIRE(f.jobs.finish("a", "k1", 1));
    REQUIRE(f.jobs.finish("a", "plain", 1));
    CHECK(f.jobs.counts().of_key("acme", "user:1") == 1);
    CHECK(f.jobs.take_freed_keys() == std::vector<KeyRef>{{"acme", "user:1"}});
    CHECK(f.jobs.take_freed_keys().empty());
    REQUIRE(f.jobs.cancel("k2"));
    CHECK(f.jobs.counts().of_key("acme", "user:1") == 0);
    CHECK(f.jobs.take_freed_keys() == std::vector<KeyRef>{{"acme", "user:1"}});

    WorkerInfo& b = f.pool.ready("b", "worker-b", "cpp", {"echo"}, 4, T0);
    f.run(f.a, "expiring", 2, T0 + 1s, keyed);
    f.run(b, "lost", 1, T0 + 60s, keyed);
    f.jobs.assign(f.a, "unstarted", "echo", 0, keyed);
    CHECK(f.jobs.counts().of_key("acme", "user:1") == 3);
    REQUIRE(f.jobs.expire_leases(T0 + 1s).size() == 1);
    REQUIRE(f.jobs.lose(*f.pool.find("b")).size() == 1);
    f.jobs.unassign("unstarted", "a");
    CHECK(f.jobs.counts().of_key("acme", "user:1") == 0);
    CHECK(f.jobs.take_freed_keys().size() == 3);
}

TEST_CASE("a lost worker's started jobs come back; other workers keep theirs") {
    Fixture f;
    WorkerInfo& b = f.pool.ready("b", "worker-b", "cpp", {"echo"}, 4, T0 + 10s);
    f.run(f.a, "started", 2, T0 + 60s);
    f.jobs.assign(f.a, "starting", "echo", 0, ACME);
    f.run(b, "elsewhere", 1, T0 + 60s);
    auto gone = f.pool.expire(T0 + 5s);
    REQUIRE(gone.size() == 1);
    auto lost = f.jobs.lose(gone[0]);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job_id == "started");
    CHECK(lost[0].run.attempt == 2);
    CHECK(lost[0].run.type == "echo");
    CHECK(f.jobs.running() == 1);
    CHECK_FALSE(f.jobs.started("starting", "a", 1, T0 + 60s));
    CHECK(f.jobs.started_jobs() == std::vector<std::string>{"elsewhere"});
    CHECK(f.jobs.expire_leases(T0 + 1h).at(0).job_id == "elsewhere");
}

TEST_CASE("retry backoff doubles per attempt up to the cap, with +-25% jitter") {
    WorkerPool pool;
    JobTable jobs(pool, Backoff{1000ms, 60000ms});
    for (int i = 0; i < 200; ++i) {
        for (std::uint32_t attempt : {0u, 1u}) {
            CHECK(jobs.backoff(attempt) >= 750ms);
            CHECK(jobs.backoff(attempt) <= 1250ms);
        }
        CHECK(jobs.backoff(2) >= 1500ms);
        CHECK(jobs.backoff(2) <= 2500ms);
        CHECK(jobs.backoff(4) >= 6000ms);
        CHECK(jobs.backoff(4) <= 10000ms);
        for (std::uint32_t attempt : {8u, 30u, 4'000'000'000u}) {
            CHECK(jobs.backoff(attempt) >= 45000ms);
            CHECK(jobs.backoff(attempt) <= 75000ms);
        }
    }
    // Same seed, same jitter: attempt 2 waits twice as long as attempt 1.
    JobTable one(pool, Backoff{1000ms, 60000ms}, 7);
    JobTable two(pool, Backoff{1000ms, 60000ms}, 7);
    CHECK(std::chrono::abs(two.backoff(2) - 2 * one.backoff(1)) <= 1ms);
    // The jitter spreads: not every wait is the same.
    std::set<std::int64_t> waits;
    for (int i = 0; i < 20; ++i) waits.insert(one.backoff(1).count());
    CHECK(waits.size() > 10);
}

TEST_CASE("delayed retries are released when due, earliest first") {
    Fixture f;
    f.jobs.delay(T0 + 3s, Delayed{"c", "echo", 0, ACME});
    f.jobs.delay(T0 + 1s, Delayed{"a", "echo", 5, ACME});
    f.jobs.delay(T0 + 2s, Delayed{"b", "sleep", 0, ACME});
    f.jobs.delay(T0 + 2s, Delayed{"dropped", "echo", 0, ACME});
    CHECK(f.jobs.drop_delayed("dropped"));
    CHECK_FALSE(f.jobs.drop_delayed("dropped"));
    CHECK(f.jobs.held_jobs() == std::unordered_set<std::string>{"a", "b", "c"});
    CHECK(f.jobs.take_due(T0).empty());
    auto due = f.jobs.take_due(T0 + 2s);
    REQUIRE(due.size() == 2);
    CHECK(due[0].job_id == "a");
    CHECK(due[0].priority == 5);
    CHECK(due[1].job_id == "b");
    CHECK(due[1].type == "sleep");
    CHECK(f.jobs.delayed() == 1);
    CHECK(f.jobs.take_due(T0 + 10s).at(0).job_id == "c");
    CHECK(f.jobs.delayed() == 0);
}
