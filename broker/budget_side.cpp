// Token budgets and provider 429s on the broker's side (budgets.hpp; README.md, "Token budgets"
// and "Provider rate limits"): what READY declares, the budgets and their spend kept in step with
// Redis, the settling of each job's estimate, and RATE_LIMITED.
#include "broker.hpp"

#include "budget_scripts.hpp"
#include "keys.hpp"
#include "limits.hpp"
#include "log.hpp"
#include "names.hpp"
#include "utf8.hpp"

#include <algorithm>
#include <cstdlib>

namespace sluice::broker {
namespace {

// How often the budgets are read back (the api changes them) and their report written; the
// report lives a few intervals, like the queue report.
constexpr std::chrono::milliseconds BUDGET_REFRESH_INTERVAL{1000};
constexpr long long BUDGET_REPORT_TTL_MS = 5000;
// Bounds on what a READY may declare of a type's estimate: more bytes per token than any
// tokenizer makes, and as many completion tokens as an input may ask for.
constexpr std::uint32_t MAX_CHARS_PER_TOKEN = 1000;

}  // namespace

void Broker::declare_models(const std::string& worker, const proto::Ready& msg) {
    if (msg.models.empty()) return;  // declares no model: its types are not budgeted
    const bool parallel = msg.models.size() == msg.types.size() && msg.chars_per_token.size() == msg.types.size() &&
                          msg.max_tokens.size() == msg.types.size();
    if (!parallel)
        return dropped_.warn("READYs with unusable models", Clock::now(),
                             "backend: ignored the models of worker '{}': {} models, {} chars_per_token, {} "
                             "max_tokens for {} type(s)",
                             worker, msg.models.size(), msg.chars_per_token.size(), msg.max_tokens.size(),
                             msg.types.size());
    for (std::size_t i = 0; i < msg.types.size(); ++i) {
        const std::string& model = msg.models[i];
        if (model.empty()) continue;
        if (!valid_model_name(model) || msg.chars_per_token[i] > MAX_CHARS_PER_TOKEN ||
            msg.max_tokens[i] > MAX_INPUT_MAX_TOKENS) {
            dropped_.warn("READYs with unusable models", Clock::now(),
                          "backend: ignored the model of type {} from worker '{}': a model name of 1..{} of "
                          "[A-Za-z0-9_.:/@+-], chars_per_token 0..{}, max_tokens 0..{}",
                          msg.types[i], worker, MAX_MODEL_NAME, MAX_CHARS_PER_TOKEN, MAX_INPUT_MAX_TOKENS);
            continue;
        }
        TokenEstimator declared{model, msg.chars_per_token[i], msg.max_tokens[i]};
        auto& held = estimators_[msg.types[i]];
        if (held.model != declared.model)
            log::info("job type {} calls model {} (declared by worker '{}')", msg.types[i], model, worker);
        held = std::move(declared);
    }
}

const TokenEstimator* Broker::estimator_of(const std::string& type) const {
    if (estimators_.empty()) return nullptr;
    const auto found = estimators_.find(type);
    return found == estimators_.end() ? nullptr : &found->second;
}

void Broker::load_budgets(bool resync, std::function<void()> done) {
    if (budgets_loading_ && !resync) return;
    budgets_loading_ = true;
    const std::int64_t window = budgets_.window_of(now_ms());
    std::vector<std::string> args{std::string(keys::BUDGETS), std::string(keys::BUDGET_USE_PREFIX),
                                  std::to_string(window)};
    if (resync) args.emplace_back(keys::MODEL_PAUSES);  // the leader's own pauses are in memory
    const bool sent = eval(scripts::BUDGET_LOAD, {}, std::move(args),
                           [this, window, resync, done](redisReply* reply) {
        budgets_loading_ = false;
        if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_ARRAY || reply->element[1]->type != REDIS_REPLY_ARRAY) {
            log::error("reading the token budgets failed: {}", reply_error(reply));
            if (done) done();
            return;
        }
        const redisReply* r = reply->element[0];
        std::map<Budgets::Key, BudgetLimits> limits;
        std::vector<std::pair<Budgets::Key, std::pair<std::uint64_t, std::uint64_t>>> spent;
        for (std::size_t i = 0; i + scripts::BUDGET_LOAD_STRIDE <= r->elements; i += scripts::BUDGET_LOAD_STRIDE) {
            Budgets::Key key{reply_text(r->element[i]), reply_text(r->element[i + 1])};
            const std::string value = reply_text(r->element[i + 2]);
            BudgetLimits limit;
            char* end = nullptr;
            limit.tokens_per_minute = std::strtoull(value.c_str(), &end, 10);
            limit.requests_per_minute = std::strtoull(end, nullptr, 10);
            spent.emplace_back(key, std::pair{std::strtoull(reply_text(r->element[i + 3]).c_str(), nullptr, 10),
                                              std::strtoull(reply_text(r->element[i + 4]).c_str(), nullptr, 10)});
            limits.emplace(std::move(key), limit);
        }
        budgets_.set_limits(std::move(limits));
        if (resync) {
            for (const auto& [key, use] : spent) budgets_.load(key.first, key.second, window, use.first, use.second);
            resume_pauses(reply->element[1]);
        }
        if (done) done();
    });
    if (!sent) {
        budgets_loading_ = false;
        if (done) done();
    }
}

void Broker::resume_pauses(const redisReply* pauses) {
    const std::int64_t wall = now_ms();
    const auto now = Clock::now();
    for (std::size_t i = 0; i + 2 <= pauses->elements; i += 2) {
        const std::string model = reply_text(pauses->element[i]);
        const std::int64_t left = std::strtoll(reply_text(pauses->element[i + 1]).c_str(), nullptr, 10) - wall;
        if (left <= 0) continue;
        budgets_.pause(model, now, std::chrono::milliseconds(left));
        log::info("model {} stays paused for {} ms (a provider's 429 before this broker led)", model, left);
    }
}

void Broker::refresh_budgets(Clock::time_point now) {
    if (now < next_budget_refresh_) return;
    next_budget_refresh_ = now + BUDGET_REFRESH_INTERVAL;
    load_budgets(false, {});
    if (!budgets_.any() && budgets_.pauses(now).empty()) return;
    fenced_write({"SET", std::string(keys::BUDGET_REPORT), budgets_.report(now_ms(), now), "PX",
                  std::to_string(BUDGET_REPORT_TTL_MS)},
                 "storing the budget report");
}

void Broker::store_spend(const std::optional<Budgets::Change>& change) {
    if (!change) return;
    // Two windows: a job settled just after its window turned still finds the key.
    const std::int64_t ttl_ms = 2 * budgets_.window().count() + 1000;
    eval(scripts::BUDGET_SPEND, {keys::budget_use(change->window, change->tenant, change->model)},
         {std::to_string(change->tokens), std::to_string(change->requests), std::to_string(ttl_ms)},
         [tenant = change->tenant, model = change->model](redisReply* r) {
             if (r != nullptr && r->type == REDIS_REPLY_ERROR)
                 log::error("storing the token spend of {} on {} failed: {}", tenant, model, reply_error(r));
         });
}

void Broker::correct_estimate(const std::string& job_id, const std::string& type, std::string_view input) {
    const TokenEstimator* estimator = estimator_of(type);
    if (estimator == nullptr) return;
    const std::uint64_t prompt = estimator->estimate(input.size(), 0) - estimator->max_tokens;
    typical_prompt_[type] = prompt;
    if (!budgets_.reserved(job_id)) return;
    const std::uint64_t padding = shortfall_[type];
    store_spend(budgets_.settle(job_id, estimator->estimate(input.size(), input_max_tokens(input)) + padding, false,
                                padding));
}

void Broker::settle_tokens(const std::string& job_id, const std::string& type, std::uint32_t prompt_tokens,
                           std::uint32_t completion_tokens) {
    const auto held = budgets_.reserved(job_id);
    if (!held) return;
    const std::uint64_t used = std::uint64_t{prompt_tokens} + completion_tokens;
    const std::uint64_t declared = held->tokens - held->padding;
    std::uint64_t& shortfall = shortfall_[type];
    shortfall = std::max(used > declared ? used - declared : 0, shortfall - shortfall / 8);
    store_spend(budgets_.settle(job_id, used, true));
}

void Broker::handle_rate_limited(const std::string& peer, const proto::RateLimited& msg) {
    auto run = jobs_.finish(peer, msg.job_id, msg.attempt);
    if (!run) return drop_stale("RATE_LIMITED", msg.job_id, msg.attempt);
    const auto pause = std::min(std::chrono::milliseconds(msg.retry_after_ms), MAX_MODEL_PAUSE);
    // The provider refused the call: it used no tokens.
    store_spend(budgets_.settle(msg.job_id, 0, true));
    if (const TokenEstimator* estimator = estimator_of(run->type)) {
        budgets_.pause(estimator->model, Clock::now(), pause);
        eval(scripts::MODEL_PAUSE, {std::string(keys::MODEL_PAUSES)},
             {estimator->model, std::to_string(now_ms() + pause.count()), std::to_string(MAX_MODEL_PAUSE.count())},
             [model = estimator->model](redisReply* r) {
                 if (r != nullptr && r->type == REDIS_REPLY_ERROR)
                     log::error("storing the pause of model {} failed: {}", model, reply_error(r));
             });
        log::warn("model {} rate limited by its provider (job {}): no job of it starts for {} ms", estimator->model,
                  msg.job_id, pause.count());
    }
    const std::string error = fmt::format("rate limited by the model provider, retry after {} ms: {}", pause.count(),
                                          utf8_prefix(msg.error, limits::MAX_ERROR_BYTES / 2));
    fail_job(msg.job_id, *run, error, "rate_limited", true, pause);
}

}  // namespace sluice::broker
