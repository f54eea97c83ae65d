// Token budgets per (tenant, model) and model pauses after a provider's 429 (README.md, "Token
// budgets" and "Provider rate limits"). The broker reserves a job's token estimate when it
// dispatches it, corrects the estimate once the start hands it the job's input, and settles it
// with the usage the worker reports; a tenant whose budget for a model cannot take the next
// job's estimate in the current window is passed over by dispatch (JobQueues::Admit) until the
// window turns. Windows are fixed: window N covers [N * window, (N + 1) * window) of the wall
// clock, so every broker (and a restarted one, reading the spend back from Redis) agrees on them.
// No sockets and no Redis: the broker writes each change through (keys::budget_use) and feeds
// the stored spend back at resync. Not thread-safe: the broker loop thread owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sluice::broker {

// A budget's limits; 0 leaves that one unlimited.
struct BudgetLimits {
    std::uint64_t tokens_per_minute = 0;
    std::uint64_t requests_per_minute = 0;
};

// How a worker says a job type's tokens are estimated (READY: models, chars_per_token,
// max_tokens).
struct TokenEstimator {
    std::string model;
    std::uint32_t chars_per_token = 0;  // 0: the prompt is not counted
    std::uint32_t max_tokens = 0;

    // The estimate of a job whose input is `input_bytes` long and asks for `input_max_tokens`
    // (0: the declared default): ceil(input_bytes / chars_per_token) + max_tokens.
    std::uint64_t estimate(std::size_t input_bytes, std::uint64_t input_max_tokens) const;
};

// The `max_tokens` a msgpack job input asks for: a top-level map's positive integer member
// "max_tokens", at most MAX_INPUT_MAX_TOKENS; 0 when there is none. Never throws.
std::uint64_t input_max_tokens(std::string_view input);
inline constexpr std::uint64_t MAX_INPUT_MAX_TOKENS = 1'000'000;

// Longest a provider's 429 pauses a model: a Retry-After past it is cut to it, so a confused
// provider cannot stop a model's jobs for hours.
inline constexpr std::chrono::milliseconds MAX_MODEL_PAUSE{10 * 60 * 1000};

class Budgets {
public:
    using Key = std::pair<std::string, std::string>;  // tenant, model

    // `window`: the length of a budget's window (SLUICE_BUDGET_WINDOW_MS, a minute).
    explicit Budgets(std::chrono::milliseconds window);

    std::chrono::milliseconds window() const { return window_; }
    // The window that holds wall-clock time `now_ms`.
    std::int64_t window_of(std::int64_t now_ms) const { return now_ms / window_.count(); }

    // Replaces every limit with `limits` (as the api stored them). Spend already counted stays.
    void set_limits(std::map<Key, BudgetLimits> limits);
    const std::map<Key, BudgetLimits>& limits() const { return limits_; }
    // Whether any limit is set: without one dispatch asks nothing of this class.
    bool any() const { return !limits_.empty(); }

    // Whether a job of `tenant` estimated at `tokens` may start on `model` at `now_ms`: no
    // limit, or the window's requests stay within requests_per_minute and its tokens within
    // tokens_per_minute with it. A job larger than the whole token limit starts only in a window
    // with no tokens spent yet, alone: it never would otherwise.
    bool admits(const std::string& tenant, const std::string& model, std::uint64_t tokens, std::int64_t now_ms);

    // What a change of spend writes through: the window's key and the deltas to add to it.
    struct Change {
        std::string tenant;
        std::string model;
        std::int64_t window = 0;
        std::int64_t tokens = 0;
        std::int64_t requests = 0;
    };
    // Counts job `job_id` against (tenant, model) from now on: one request and `tokens`
    // (its estimate, `padding` of it learned from earlier jobs rather than declared) in the
    // window of `now_ms`. Returns the change to store, nullopt when the pair has no limit
    // (nothing is counted).
    std::optional<Change> reserve(const std::string& job_id, const std::string& tenant, const std::string& model,
                                  std::uint64_t tokens, std::uint64_t padding, std::int64_t now_ms);
    // Replaces the job's counted tokens with `tokens` (a better estimate, `padding` of it
    // learned, or what it used), in the window it was reserved in. Returns the change, nullopt
    // for a job not counted or no change. `final`: the job is settled and forgotten.
    std::optional<Change> settle(const std::string& job_id, std::uint64_t tokens, bool final,
                                 std::uint64_t padding = 0);
    // Forgets a job without changing its count: it ended without saying what it used (lost,
    // canceled), so its estimate stays spent.
    void forget(const std::string& job_id) { reserved_.erase(job_id); }
    // Whether any job is counted now: without, a job's end asks nothing more of this class.
    bool holding() const { return !reserved_.empty(); }
    // The tokens counted for a job now and the padding in them, nullopt for one not counted.
    struct Held {
        std::uint64_t tokens = 0;
        std::uint64_t padding = 0;
    };
    std::optional<Held> reserved(const std::string& job_id) const;

    // The spend stored for (tenant, model) in `window` (read back at resync): taken when it is
    // more than what is counted here.
    void load(const std::string& tenant, const std::string& model, std::int64_t window, std::uint64_t tokens,
              std::uint64_t requests);

    // A provider answered 429 for `model`: no job of it starts before `until` (at most
    // MAX_MODEL_PAUSE from `now`; a later pause extends, an earlier one does not shorten).
    void pause(const std::string& model, std::chrono::steady_clock::time_point now,
               std::chrono::milliseconds retry_after);
    // Whether `model` is paused at `now` (expired pauses are dropped).
    bool paused(const std::string& model, std::chrono::steady_clock::time_point now);
    // The models paused at `now`, with the milliseconds left.
    std::vector<std::pair<std::string, std::int64_t>> pauses(std::chrono::steady_clock::time_point now);

    // One line per budget for the queue report: limits and this window's spend.
    struct Use {
        std::string tenant;
        std::string model;
        BudgetLimits limits;
        std::uint64_t tokens = 0;
        std::uint64_t requests = 0;
    };
    std::vector<Use> usage(std::int64_t now_ms);
    // The report GET /v1/queues shows (keys::BUDGET_REPORT): a msgpack map {"as_of_ms",
    // "window_ms", "budgets": [[tenant, model, tokens_per_minute, requests_per_minute, tokens,
    // requests], ...], "paused": [[model, ms_left], ...]}.
    std::string report(std::int64_t now_ms, std::chrono::steady_clock::time_point now);

private:
    struct Spend {
        std::int64_t window = -1;
        std::uint64_t tokens = 0;
        std::uint64_t requests = 0;
    };
    struct Reservation {
        Key key;
        std::int64_t window = 0;
        std::uint64_t tokens = 0;
        std::uint64_t padding = 0;
    };
    // The pair's spend in the window of `now_ms` (a new window starts from nothing).
    Spend& current(const Key& key, std::int64_t now_ms);

    std::chrono::milliseconds window_;
    std::map<Key, BudgetLimits> limits_;
    std::map<Key, Spend> spend_;
    std::unordered_map<std::string, Reservation> reserved_;  // by job id
    std::unordered_map<std::string, std::chrono::steady_clock::time_point> paused_;  // by model
};

}  // namespace sluice::broker
