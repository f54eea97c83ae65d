// Credit accounting: a worker never gets more jobs than its concurrency; the freest worker
// serving a type gets the next job; silent workers are expired with the jobs they held.
#include "worker_pool.hpp"

#include <doctest/doctest.h>

using namespace sluice::broker;
using namespace std::chrono_literals;

TEST_CASE("credit is concurrency minus jobs held") {
    WorkerPool pool;
    auto now = Clock::now();
    WorkerInfo& w = pool.ready("id1", "w1", "cpp", {"echo"}, 2, now);
    CHECK(w.credit() == 2);
    pool.assign(w, "j1");
    pool.assign(w, "j2");
    CHECK(w.credit() == 0);
    CHECK(pool.pick("echo") == nullptr);
    CHECK(pool.release("id1", "j1"));
    CHECK_FALSE(pool.release("id1", "j1"));
    CHECK_FALSE(pool.release("nobody", "j2"));
    CHECK(pool.pick("echo") == &w);
}

TEST_CASE("pick chooses a worker serving the type with the most free credit") {
    WorkerPool pool;
    auto now = Clock::now();
    WorkerInfo& a = pool.ready("a", "a", "python", {"echo", "sleep"}, 4, now);
    WorkerInfo& b = pool.ready("b", "b", "cpp", {"echo"}, 2, now);
    CHECK(pool.pick("sleep") == &a);
    CHECK(pool.pick("chat") == nullptr);
    CHECK(pool.pick("echo") == &a);
    pool.assign(a, "1");
    pool.assign(a, "2");
    pool.assign(a, "3");
    CHECK(pool.pick("echo") == &b);  // b has 2 free, a has 1
}

TEST_CASE("ties go to the least recently assigned worker, so load spreads") {
    WorkerPool pool;
    auto now = Clock::now();
    pool.ready("a", "a", "python", {"echo"}, 100, now);
    pool.ready("b", "b", "python", {"echo"}, 100, now);
    pool.ready("c", "c", "cpp", {"echo"}, 100, now);
    std::map<std::string, int> counts;
    for (int i = 0; i < 30; ++i) {
        WorkerInfo* w = pool.pick("echo");
        REQUIRE(w != nullptr);
        pool.assign(*w, "job" + std::to_string(i));
        counts[w->identity]++;
    }
    CHECK(counts["a"] == 10);
    CHECK(counts["b"] == 10);
    CHECK(counts["c"] == 10);
}

TEST_CASE("READY again keeps the jobs held; expiry returns silent workers with their jobs") {
    WorkerPool pool;
    auto t0 = Clock::now();
    WorkerInfo& w = pool.ready("a", "a", "python", {"echo"}, 2, t0);
    pool.assign(w, "j1");
    pool.ready("a", "a", "python", {"echo", "sleep"}, 3, t0 + 1s);
    CHECK(pool.find("a")->jobs.size() == 1);
    CHECK(pool.find("a")->credit() == 2);
    pool.ready("b", "b", "cpp", {"echo"}, 1, t0 + 5s);

    auto gone = pool.expire(t0 + 3s);
    REQUIRE(gone.size() == 1);
    CHECK(gone[0].identity == "a");
    CHECK(gone[0].jobs == std::set<std::string>{"j1"});
    CHECK(pool.find("a") == nullptr);
    CHECK(pool.find("b") != nullptr);
}

TEST_CASE("a leaving worker keeps its jobs but gets no new ones until it says READY again") {
    WorkerPool pool;
    auto now = Clock::now();
    WorkerInfo& w = pool.ready("a", "a", "cpp", {"echo"}, 4, now);
    pool.assign(w, "j1");
    w.leaving = true;
    CHECK(w.credit() == 0);
    CHECK(pool.pick("echo") == nullptr);
    CHECK(w.jobs.size() == 1);
    pool.ready("a", "a", "cpp", {"echo"}, 4, now);
    CHECK(w.credit() == 3);
}
