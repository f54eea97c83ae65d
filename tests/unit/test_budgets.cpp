// Token budgets (broker/budgets.hpp): the estimate, admission within a window's limits, settling
// an estimate with what a job used, windows turning, spend read back after a restart, model
// pauses; and dispatch passing over a tenant whose budget is spent without holding the others up.
#include "budgets.hpp"
#include "job_queue.hpp"

#include <doctest/doctest.h>
#include <msgpack.hpp>

using namespace sluice::broker;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t MINUTE_MS = 60000;
const Budgets::Key ACME_GPT{"acme", "gpt"};

Budgets with_limit(std::uint64_t tokens, std::uint64_t requests = 0) {
    Budgets budgets{std::chrono::milliseconds(MINUTE_MS)};
    budgets.set_limits({{ACME_GPT, BudgetLimits{tokens, requests}}});
    return budgets;
}

std::string packed_map(const char* key, std::int64_t value) {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> out(buffer);
    out.pack_map(2);
    out.pack(std::string("prompt"));
    out.pack(std::string("hello"));
    out.pack(std::string(key));
    out.pack(value);
    return std::string(buffer.data(), buffer.size());
}

}  // namespace

TEST_CASE("the estimate is the input's bytes per chars_per_token, rounded up, plus max_tokens") {
    const TokenEstimator estimator{"gpt", 4, 256};
    CHECK(estimator.estimate(0, 0) == 256);
    CHECK(estimator.estimate(9, 0) == 3 + 256);
    CHECK(estimator.estimate(9, 10) == 3 + 10);  // the input's own max_tokens
    CHECK(TokenEstimator{"gpt", 0, 5}.estimate(1000, 0) == 5);  // the prompt not counted
}

TEST_CASE("an input's max_tokens is read from a top-level map, bounded, and never throws") {
    CHECK(input_max_tokens(packed_map("max_tokens", 64)) == 64);
    CHECK(input_max_tokens(packed_map("max_tokens", -3)) == 0);
    CHECK(input_max_tokens(packed_map("max_tokens", 1LL << 40)) == MAX_INPUT_MAX_TOKENS);
    CHECK(input_max_tokens(packed_map("other", 64)) == 0);
    CHECK(input_max_tokens("") == 0);
    CHECK(input_max_tokens("\xdf\xff\xff\xff\xff") == 0);  // a map claiming 4 billion entries
    CHECK(input_max_tokens("\x93\x01\x02") == 0);           // an array, truncated
}

TEST_CASE("a budget admits jobs while their estimates fit the window's tokens and requests") {
    Budgets budgets = with_limit(100, 3);
    CHECK(budgets.admits("acme", "gpt", 60, 0));
    CHECK(budgets.reserve("j1", "acme", "gpt", 60, 0, 0).has_value());
    CHECK_FALSE(budgets.admits("acme", "gpt", 41, 0));
    CHECK(budgets.admits("acme", "gpt", 40, 0));
    // Another tenant, another model: not limited.
    CHECK(budgets.admits("beta", "gpt", 1000, 0));
    CHECK(budgets.admits("acme", "other", 1000, 0));
    CHECK_FALSE(budgets.reserve("j9", "beta", "gpt", 1000, 0, 0).has_value());
    // Requests: three per window.
    budgets.reserve("j2", "acme", "gpt", 10, 0, 0);
    budgets.reserve("j3", "acme", "gpt", 10, 0, 0);
    CHECK_FALSE(budgets.admits("acme", "gpt", 1, 0));
}

TEST_CASE("settling replaces the estimate with what the job used, in the window it was reserved in") {
    Budgets budgets = with_limit(100);
    budgets.reserve("j1", "acme", "gpt", 80, 0, 0);
    CHECK_FALSE(budgets.admits("acme", "gpt", 30, 1));
    const auto change = budgets.settle("j1", 50, true);
    REQUIRE(change.has_value());
    CHECK(change->tokens == -30);
    CHECK(change->window == 0);
    CHECK(budgets.admits("acme", "gpt", 50, 2));
    CHECK_FALSE(budgets.admits("acme", "gpt", 51, 2));
    CHECK_FALSE(budgets.settle("j1", 10, true).has_value());  // settled already
    // Settled after the window turned: the old window's key is corrected, the new one is not touched.
    budgets.reserve("j2", "acme", "gpt", 40, 0, 10);
    const auto late = budgets.settle("j2", 45, true);
    REQUIRE(late.has_value());
    CHECK(late->window == 0);
    CHECK(budgets.usage(MINUTE_MS).front().tokens == 0);
}

TEST_CASE("a new window starts from nothing; a job larger than the whole budget runs alone") {
    Budgets budgets = with_limit(100);
    budgets.reserve("j1", "acme", "gpt", 100, 0, 0);
    CHECK_FALSE(budgets.admits("acme", "gpt", 1, MINUTE_MS - 1));
    CHECK(budgets.admits("acme", "gpt", 100, MINUTE_MS));
    CHECK(budgets.admits("acme", "gpt", 500, MINUTE_MS));  // nothing spent in it yet
    budgets.reserve("j2", "acme", "gpt", 1, 0, MINUTE_MS);
    CHECK_FALSE(budgets.admits("acme", "gpt", 500, MINUTE_MS));
}

TEST_CASE("the spend stored in Redis is taken over after a restart") {
    Budgets budgets = with_limit(100, 10);
    budgets.load("acme", "gpt", 2, 90, 4);
    CHECK_FALSE(budgets.admits("acme", "gpt", 11, 2 * MINUTE_MS));
    CHECK(budgets.admits("acme", "gpt", 10, 2 * MINUTE_MS));
    const auto use = budgets.usage(2 * MINUTE_MS);
    REQUIRE(use.size() == 1);
    CHECK(use[0].tokens == 90);
    CHECK(use[0].requests == 4);
    // A spend read back while more is counted here already does not lower it.
    budgets.load("acme", "gpt", 2, 10, 1);
    CHECK(budgets.usage(2 * MINUTE_MS)[0].tokens == 90);
    // A budget deleted is no longer counted.
    budgets.set_limits({});
    CHECK_FALSE(budgets.any());
    CHECK(budgets.admits("acme", "gpt", 1000, 2 * MINUTE_MS));
}

TEST_CASE("a 429 pauses a model until its retry_after, at most MAX_MODEL_PAUSE") {
    Budgets budgets{std::chrono::milliseconds(MINUTE_MS)};
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    budgets.pause("gpt", t0, 2s);
    CHECK(budgets.paused("gpt", t0 + 1s));
    CHECK_FALSE(budgets.paused("other", t0 + 1s));
    budgets.pause("gpt", t0, 1s);  // an earlier end does not shorten it
    CHECK(budgets.paused("gpt", t0 + 1500ms));
    CHECK_FALSE(budgets.paused("gpt", t0 + 2s));
    budgets.pause("gpt", t0, 24h);
    CHECK(budgets.paused("gpt", t0 + MAX_MODEL_PAUSE - 1ms));
    CHECK_FALSE(budgets.paused("gpt", t0 + MAX_MODEL_PAUSE));
}

TEST_CASE("dispatch passes over a tenant whose budget is spent and serves the others") {
    JobQueues queues;
    queues.push("chat", "a1", 5, Owner{"acme", "", 0}, 1);
    queues.push("chat", "a2", 5, Owner{"acme", "", 0}, 2);
    queues.push("chat", "b1", 5, Owner{"beta", "", 0}, 3);
    const RunningCounts running;
    const JobQueues::Admit beta_only = [](const std::string& tenant) { return tenant == "beta"; };
    auto first = queues.pop("chat", running, beta_only);
    REQUIRE(first.has_value());
    CHECK(first->job_id == "b1");
    CHECK_FALSE(queues.pop("chat", running, beta_only).has_value());
    // acme's jobs kept their place and their order.
    CHECK(queues.depth("chat") == 2);
    CHECK(queues.pop("chat", running)->job_id == "a1");
    CHECK(queues.pop("chat", running)->job_id == "a2");
}
