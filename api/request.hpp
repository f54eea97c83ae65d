// Pure request/response logic of the HTTP api: JSON validation, protocol conversion, job and
// event formatting, routing. Everything here takes and returns plain data (no sockets, no
// Redis), so tests/unit/test_api_request.cpp drives it directly. All functions are thread-safe.
#pragma once

#include "errors.hpp"
#include "job_id.hpp"
#include "limits.hpp"
#include "names.hpp"
#include "protocol.hpp"
#include "token_bucket.hpp"
#include "webhooks.hpp"

#include "http_wire.hpp"
#include "job_json.hpp"
#include "json_writer.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace sluice::api {

using json = nlohmann::json;

// An expected failure with its HTTP status and stable error code (common/errors.hpp).
struct ApiError {
    int status = 400;
    std::string code;
    std::string message;
};

// The ApiError of catalogued `code`, with its own status.
inline ApiError api_error(const errors::Code& code, std::string message) {
    return ApiError{code.status, std::string(code.name), std::move(message)};
}

// Either a value or the ApiError explaining why there is none.
template <class T>
using Checked = std::variant<T, ApiError>;

// Defaults of POST /v1/jobs options (their ranges are in common/limits.hpp), and the priority
// range (inclusive).
inline constexpr std::int64_t TIMEOUT_S_DEFAULT = 300;
inline constexpr std::int64_t MAX_ATTEMPTS_DEFAULT = 3;
inline constexpr std::int64_t PRIORITY_MIN = 0, PRIORITY_MAX = 9, PRIORITY_DEFAULT = 0;
// options.concurrency_limit of a job that names a concurrency_key and no limit: one at a time.
inline constexpr std::int64_t CONCURRENCY_LIMIT_DEFAULT = 1;
// Deepest JSON nesting accepted in a request body. The msgpack encoder and decoder recurse,
// so this keeps a hostile body from exhausting the stack.
inline constexpr int MAX_JSON_DEPTH = 64;
// Highest Last-Event-ID (or WebSocket last_seq) accepted (keeps seq + 1 from overflowing).
inline constexpr std::uint64_t MAX_EVENT_ID = std::uint64_t{1} << 62;
// Longest ?wait= for GET /v1/jobs/{id}/result, in seconds.
inline constexpr int MAX_RESULT_WAIT_S = 60;
inline constexpr std::string_view DEFAULT_TENANT = "default";
inline constexpr std::string_view IDEMPOTENCY_HEADER = "Idempotency-Key";
inline constexpr std::string_view REPLAYED_HEADER = "Idempotent-Replayed";
// GET /v1/dead paging: ?limit= (1..1000, 100) and ?offset= (>= 0, 0). The upper bound on
// offset only keeps offset + limit from overflowing; Redis answers an empty page past the end.
inline constexpr std::int64_t DEAD_LIMIT_MIN = 1, DEAD_LIMIT_MAX = 1000, DEAD_LIMIT_DEFAULT = 100;
inline constexpr std::int64_t DEAD_OFFSET_MAX = std::int64_t{1} << 53;
// Attempt history entries read per job (the newest ones): a job retried by hand again and
// again keeps growing its history, and one job body must stay bounded.
inline constexpr int MAX_HISTORY_ENTRIES = 1000;

// The job hash fields the job body is built from, in HMGET order. `input` is left out on
// purpose: it can be up to a request body in size and no answer shows it.
inline constexpr std::string_view JOB_FIELDS[] = {
    "id", "tenant", "type", "status", "priority", "max_attempts", "timeout_s", "attempts",
    "created_ms", "started_ms", "finished_ms", "result", "error", "redeliveries", "key_id",
    "run_at_ms", "expire_at_ms", "error_code", "traceparent", "rate_limited", "joined", "schedule_id",
    "schedule_tick", "missed_ticks", "parent", "on_failure", "children"};

// Returns the body `{"error": {"code": code, "message": message}}`.
std::string error_body(std::string_view code, std::string_view message);

// A result with `status` whose body is JSON text already.
HttpResult text_result(int status, std::string body);

// Returns a JSON HttpResult for `error`.
HttpResult error_result(const ApiError& error);
// The same for catalogued `code`.
HttpResult error_result(const errors::Code& code, std::string message);

// 404 job_not_found for job `id`: also the answer for an id that is not a UUID.
HttpResult job_not_found(std::string_view id);

// 429 rate_limited for `what` ("requests", "submits") past `limit` a second, from the bucket's
// answer: Retry-After, and the IETF draft's RateLimit-Limit, -Remaining and -Reset.
HttpResult rate_limited(std::string_view what, std::uint32_t limit, const TokenBucket::Taken& taken);

// 503 redis_unavailable: the job store did not answer.
HttpResult redis_unavailable();

// Wall-clock milliseconds since the epoch.
std::int64_t wall_now_ms();

// Parses a request body that must be one JSON object, nested at most MAX_JSON_DEPTH deep.
// Errors: 400 invalid_json (not JSON, or not an object), 422 invalid_request (too deep).
Checked<json> parse_json_object(std::string_view body);

// Validates a POST /v1/jobs body and builds the SUBMIT to send (req_id left 0). `job_id` is the
// id the job will get. With an `idempotency_key` (the Idempotency-Key header's value) the
// SUBMIT carries it and its request_hash; without one both stay empty. `now_ms` is now, for the
// scheduling options (job_timing.hpp). When `input` is given, the job's input as parsed is moved
// into it (for the schema check).
// Errors: 400 invalid_json, 422 invalid_request (message names the field or header), 422
// invalid_schedule and invalid_expiry (job_timing.hpp), 413 input_too_large (the input is more
// than `max_input_bytes` as msgpack; the message gives both), and options.webhook's
// (webhook_options.hpp: a literal address in `webhook_allow_nets` passes).
Checked<proto::Submit> parse_submit(std::string_view body, std::string job_id,
                                    std::optional<std::string_view> idempotency_key = std::nullopt,
                                    std::size_t max_input_bytes = limits::DEFAULT_MAX_INPUT,
                                    std::int64_t now_ms = wall_now_ms(), json* input = nullptr,
                                    const std::vector<webhooks::Net>& webhook_allow_nets = {});

// parse_submit() of one job already parsed as JSON (`doc`, whose input is moved out): a POST
// /v1/jobs body, or a job of a flow. No idempotency key; `timing_out`, when given, receives the
// scheduling options as given (for request_hash).
Checked<proto::Submit> parse_job(json& doc, std::string job_id, std::size_t max_input_bytes, std::int64_t now_ms,
                                 json* input_out = nullptr, const std::vector<webhooks::Net>& webhook_allow_nets = {},
                                 json* timing_out = nullptr);

// Returns nullopt when `key` is a valid Idempotency-Key (1..255 chars in 0x21..0x7e), else
// the 422 invalid_request naming the header.
std::optional<ApiError> check_idempotency_key(std::string_view key);

// Lowercase hex SHA-256 of the canonical form of a submit: a msgpack array of a version tag,
// the type, the input (msgpack, object keys sorted), and the effective priority, max_attempts
// and timeout_s (defaults filled in), then concurrency_key and concurrency_limit if it has a
// key (so the hash of a submit without one is what it was before they existed), then the
// scheduling options as given (`timing`: an object of delay_s, run_at and expire_after_s, left
// out when empty), not the times they made, so a replay a second later hashes alike, and the
// webhook's url and events if it has one. So key order, whitespace and spelling out a default
// option do not change it; any other difference does. Thread-safe (OpenSSL EVP one-shot).
std::string request_hash(const proto::Submit& submit, const json& timing = json::object());

// Lowercase hex SHA-256 of `bytes`. Thread-safe.
std::string sha256_hex(const std::vector<std::uint8_t>& bytes);

// make_job_id() (common/job_id.hpp): the api makes submitted jobs' ids, the broker those a
// schedule fires.
using sluice::make_job_id;

// Parses ?wait=S (0..60). Error 422 invalid_request otherwise.
Checked<int> parse_wait(std::string_view text);

// One page of GET /v1/dead.
struct Page {
    std::int64_t limit = DEAD_LIMIT_DEFAULT;
    std::int64_t offset = 0;
};
// Reads ?limit= and ?offset= from a query; error 422 invalid_request naming the parameter.
Checked<Page> parse_page(const std::map<std::string, std::string>& query);

// A GET /v1/dead body stops short of this many bytes: a full page of 1000 jobs with up to 1000
// history entries each could otherwise run to gigabytes. 1 MiB, as an event stream's batch.
inline constexpr std::size_t DEAD_PAGE_MAX_BYTES = 1024 * 1024;

// Builds one GET /v1/dead body, {"jobs": [...], "total", "limit", "offset"}, plus
// "next_offset", where the next page starts, whenever dead jobs remain past this one (the page
// is full, or its bytes ran out). Jobs are added while the body stays within `max_bytes`; the
// first whatever its size, so a client paging on always moves forward.
class DeadPageBody {
public:
    // `member` names the list ("jobs"; GET /v1/schedules pages its "schedules" alike).
    explicit DeadPageBody(const Page& page, std::size_t max_bytes = DEAD_PAGE_MAX_BYTES, std::string_view member = "jobs");
    // Adds the page's next job (its job body). Returns false, adding nothing, when it would pass
    // the bound: the page ends before it.
    [[nodiscard]] bool add(std::string_view job_json);
    // Passes over the page's next job: it expired after its id was read.
    void skip();
    // Returns the body; `total` is the number of dead jobs.
    std::string finish(std::int64_t total);

private:
    Page page_;
    std::size_t max_bytes_;
    std::int64_t taken_ = 0;  // jobs of the page added or skipped: the next page starts after them
    bool listed_any_ = false;
    JsonWriter body_;
};

// A request target split into its path and decoded query parameters.
struct Target {
    std::string path;
    std::map<std::string, std::string> query;
};
Target split_target(std::string_view target);

// Matches `path` against a route pattern, where "{id}" matches one non-empty segment; on
// success stores that segment in `id`. Returns whether it matched.
bool match_path(std::string_view pattern, std::string_view path, std::string& id);

// HTTP answer to a SUBMIT, from the broker's REPLY: 202 with links for a new job; for a REPLY
// 200 (an idempotent replay) the same 202 body for the original job (the REPLY's job_id and
// state) plus `Idempotent-Replayed: true`; a REPLY `cached` (options.cache_ttl_s) 200, the body
// for the job that succeeded with `"cached": true` and its result (`cached_result`, the job's
// msgpack result as read; null when it could not be read); a REPLY that names the job it
// `joined` (options.dedupe) adds `"joined": that id` to either body; a REPLY 503 outcome_unknown (no answer in time: the
// job may be stored) says where the job would be and how to retry safely, with Retry-After;
// else the REPLY's error (409 idempotency_conflict...). The events and result links carry a read
// token (credentials.hpp) made with `token_secret`, valid until `token_expires_s`.
HttpResult submit_result(const proto::Submit& submit, const proto::Reply& reply, std::string_view token_secret,
                         std::int64_t token_expires_s, const std::string* cached_result = nullptr);

// HTTP answer to a RETRY, from the broker's REPLY: 200 {"id", "status"}, else its error
// (404 job_not_found, 409 job_not_dead, 503).
HttpResult retry_result(std::string_view job_id, const proto::Reply& reply);

// HTTP answer to a CANCEL, from the broker's REPLY.
HttpResult cancel_result(std::string_view job_id, const proto::Reply& reply);

}  // namespace sluice::api
