// Pure request/response logic of the HTTP api (see request.hpp).
#include "request.hpp"

#include "credentials.hpp"
#include "job_timing.hpp"
#include "webhook_options.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <span>
#include <stdexcept>

namespace sluice::api {
namespace {

ApiError invalid_request(std::string message) {
    return api_error(errors::INVALID_REQUEST, std::move(message));
}

// Reads one integer option. Returns the error to report, or nullopt when the value is fine.
std::optional<ApiError> read_int_option(const json& options, const char* name, std::int64_t min,
                                        std::int64_t max, std::int64_t& out) {
    auto it = options.find(name);
    if (it == options.end()) return std::nullopt;
    const std::string field = std::string("options.") + name;
    const std::string range = " must be an integer between " + std::to_string(min) + " and " +
                              std::to_string(max);
    if (!it->is_number_integer()) return invalid_request(field + range);
    if (it->is_number_unsigned()) {
        const auto value = it->get<std::uint64_t>();
        if (value > static_cast<std::uint64_t>(max)) return invalid_request(field + range);
        out = static_cast<std::int64_t>(value);
    } else {
        out = it->get<std::int64_t>();
    }
    if (out < min || out > max) return invalid_request(field + range);
    return std::nullopt;
}

// Reads options.concurrency_key and options.concurrency_limit into `submit`; a key without a
// limit gets CONCURRENCY_LIMIT_DEFAULT. Returns the error to report, or nullopt when they are fine.
std::optional<ApiError> read_concurrency(const json& options, proto::Submit& submit) {
    std::int64_t limit = CONCURRENCY_LIMIT_DEFAULT;
    if (auto e = read_int_option(options, "concurrency_limit", limits::CONCURRENCY_LIMIT_MIN,
                                 limits::CONCURRENCY_LIMIT_MAX, limit))
        return e;
    auto key = options.find("concurrency_key");
    if (key == options.end()) {
        if (options.contains("concurrency_limit"))
            return invalid_request("options.concurrency_limit needs options.concurrency_key");
        return std::nullopt;
    }
    if (!key->is_string() || !valid_concurrency_key(key->get_ref<const std::string&>()))
        return invalid_request("options.concurrency_key must be a string of 1 to " +
                               std::to_string(limits::MAX_CONCURRENCY_KEY) + " visible ASCII characters (0x21-0x7e)");
    submit.concurrency_key = key->get<std::string>();
    submit.concurrency_limit = static_cast<std::uint32_t>(limit);
    return std::nullopt;
}

// Reads options.on_disconnect ("keep", the default, or "cancel") and options.disconnect_grace_s
// into `submit`. Returns the error to report, or nullopt when they are fine.
std::optional<ApiError> read_on_disconnect(const json& options, proto::Submit& submit) {
    std::int64_t grace_s = limits::DISCONNECT_GRACE_S_DEFAULT;
    if (auto e = read_int_option(options, "disconnect_grace_s", limits::DISCONNECT_GRACE_S_MIN,
                                 limits::DISCONNECT_GRACE_S_MAX, grace_s))
        return e;
    auto mode = options.find("on_disconnect");
    const bool cancel = mode != options.end() && *mode == "cancel";
    if (mode != options.end() && !cancel && *mode != "keep")
        return invalid_request("options.on_disconnect must be \"keep\" or \"cancel\"");
    if (!cancel) {
        if (options.contains("disconnect_grace_s"))
            return invalid_request("options.disconnect_grace_s needs options.on_disconnect \"cancel\"");
        return std::nullopt;
    }
    submit.disconnect_grace_ms = static_cast<std::uint32_t>(grace_s * 1000);
    return std::nullopt;
}

// The options a submit may give; any other is refused, so a misspelt one is not ignored.
constexpr std::array<std::string_view, 13> KNOWN_OPTIONS = {
    "timeout_s",     "max_attempts",       "priority", "concurrency_key", "concurrency_limit",
    "on_disconnect", "disconnect_grace_s", "delay_s",  "run_at",          "expire_after_s",
    "webhook",       "cache_ttl_s",        "dedupe"};

std::optional<ApiError> check_option_names(const json& options) {
    for (const auto& item : options.items()) {
        if (std::find(KNOWN_OPTIONS.begin(), KNOWN_OPTIONS.end(), item.key()) != KNOWN_OPTIONS.end()) continue;
        std::string known;
        for (std::string_view name : KNOWN_OPTIONS) known += (known.empty() ? "" : ", ") + std::string(name);
        return invalid_request("options." + item.key() + " is not a known option (" + known + ")");
    }
    return std::nullopt;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < text.size() &&
                   hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        parts.push_back(path.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}


std::string job_path(std::string_view id) { return "/v1/jobs/" + std::string(id); }

std::string id_status_body(std::string_view id, std::string_view status) {
    JsonWriter w;
    w.begin_object().key("id").string(id).key("status").string(status).end_object();
    return w.take();
}

// The error half of a broker REPLY: its own status and code when they look like an error,
// otherwise a 502 saying the broker answered something unexpected.
HttpResult reply_error(const proto::Reply& reply) {
    if (reply.status >= 400 && reply.status <= 599) {
        ApiError error{static_cast<int>(reply.status),
                       reply.code.empty() ? "broker_error" : reply.code,
                       reply.message.empty() ? (reply.code.empty() ? "broker error" : reply.code)
                                             : reply.message};
        HttpResult result = error_result(error);
        if (reply.status == 429 || reply.status == 507 || reply.code == errors::NOT_REPLICATED.name)
            result.headers.emplace_back("Retry-After", "1");
        return result;
    }
    return error_result(errors::BROKER_ERROR, "unexpected broker reply status " + std::to_string(reply.status));
}

}  // namespace

std::string error_body(std::string_view code, std::string_view message) {
    JsonWriter w;
    w.begin_object().key("error").begin_object().key("code").string(code).key("message").string(message);
    w.end_object().end_object();
    return w.take();
}

HttpResult rate_limited(std::string_view what, std::uint32_t limit, const TokenBucket::Taken& taken) {
    const auto seconds = [](std::chrono::milliseconds ms) { return std::to_string(std::max<std::int64_t>(1, (ms.count() + 999) / 1000)); };
    HttpResult result = error_result(errors::RATE_LIMITED, "past this key's limit of " + std::to_string(limit) + " " +
                                                               std::string(what) + " a second; retry after Retry-After");
    result.headers.emplace_back("Retry-After", seconds(taken.retry_after));
    result.headers.emplace_back("RateLimit-Limit", std::to_string(limit));
    result.headers.emplace_back("RateLimit-Remaining", std::to_string(taken.remaining));
    result.headers.emplace_back("RateLimit-Reset", seconds(taken.full_after));
    return result;
}

HttpResult text_result(int status, std::string body) {
    HttpResult result;
    result.status = status;
    result.body = std::move(body);
    return result;
}

HttpResult error_result(const ApiError& error) {
    HttpResult result;
    result.status = error.status;
    result.body = error_body(error.code, error.message);
    return result;
}

HttpResult error_result(const errors::Code& code, std::string message) {
    HttpResult result;
    result.status = code.status;
    result.body = error_body(code.name, message);
    return result;
}

HttpResult job_not_found(std::string_view id) {
    return error_result(errors::JOB_NOT_FOUND, "no job with id " + std::string(id));
}

HttpResult redis_unavailable() {
    return error_result(errors::REDIS_UNAVAILABLE, "job store (Redis) is unavailable");
}

std::int64_t wall_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Checked<json> parse_json_object(std::string_view body) {
    bool too_deep = false;
    json::parser_callback_t guard = [&too_deep](int depth, json::parse_event_t, json&) {
        if (depth > MAX_JSON_DEPTH) too_deep = true;
        return !too_deep;
    };
    json doc = json::parse(body.begin(), body.end(), guard, /*allow_exceptions=*/false);
    if (too_deep)
        return invalid_request("request body nests deeper than " + std::to_string(MAX_JSON_DEPTH) +
                               " levels");
    if (doc.is_discarded()) return api_error(errors::INVALID_JSON, "request body is not valid JSON");
    if (!doc.is_object())
        return api_error(errors::INVALID_JSON, "request body must be a JSON object");
    return doc;
}

Checked<proto::Submit> parse_submit(std::string_view body, std::string job_id,
                                    std::optional<std::string_view> idempotency_key, std::size_t max_input_bytes,
                                    std::int64_t now_ms, json* input_out,
                                    const std::vector<webhooks::Net>& webhook_allow_nets) {
    if (idempotency_key) {
        if (auto e = check_idempotency_key(*idempotency_key)) return *e;
    }
    auto doc = parse_json_object(body);
    if (auto* error = std::get_if<ApiError>(&doc)) return *error;
    json timing = json::object();
    auto parsed = parse_job(std::get<json>(doc), std::move(job_id), max_input_bytes, now_ms, input_out,
                            webhook_allow_nets, &timing);
    if (auto* error = std::get_if<ApiError>(&parsed)) return *error;
    auto& submit = std::get<proto::Submit>(parsed);
    if (idempotency_key) {
        submit.idempotency_key = std::string(*idempotency_key);
        submit.request_hash = request_hash(submit, timing);
    }
    return std::move(submit);
}

Checked<proto::Submit> parse_job(json& doc, std::string job_id, std::size_t max_input_bytes, std::int64_t now_ms,
                                 json* input_out, const std::vector<webhooks::Net>& webhook_allow_nets,
                                 json* timing_out) {
    if (!doc.is_object()) return invalid_request("a job must be a JSON object");
    proto::Submit submit;
    submit.job_id = std::move(job_id);
    submit.tenant = std::string(DEFAULT_TENANT);

    auto type = doc.find("type");
    if (type == doc.end() || type->is_null()) return invalid_request("type is required");
    if (!type->is_string()) return invalid_request("type must be a string");
    const auto& type_text = type->get_ref<const std::string&>();
    if (type_text.empty()) return invalid_request("type must not be empty");
    if (!valid_job_type(type_text))
        return invalid_request("type must match [A-Za-z0-9_.:-]{1,128}");
    submit.type = type_text;

    std::int64_t timeout_s = TIMEOUT_S_DEFAULT;
    std::int64_t max_attempts = MAX_ATTEMPTS_DEFAULT;
    std::int64_t priority = PRIORITY_DEFAULT;
    json timing = json::object();
    if (auto options = doc.find("options"); options != doc.end()) {
        if (!options->is_object()) return invalid_request("options must be an object");
        if (auto e = check_option_names(*options)) return *e;
        if (auto e = read_int_option(*options, "timeout_s", limits::TIMEOUT_S_MIN, limits::TIMEOUT_S_MAX, timeout_s))
            return *e;
        if (auto e = read_int_option(*options, "max_attempts", limits::MAX_ATTEMPTS_MIN, limits::MAX_ATTEMPTS_MAX,
                                     max_attempts))
            return *e;
        if (auto e = read_int_option(*options, "priority", PRIORITY_MIN, PRIORITY_MAX, priority))
            return *e;
        if (auto e = read_concurrency(*options, submit)) return *e;
        if (auto e = read_on_disconnect(*options, submit)) return *e;
        if (auto e = read_timing(*options, now_ms, submit, timing)) return *e;
        std::int64_t cache_ttl_s = 0;
        if (auto e = read_int_option(*options, "cache_ttl_s", limits::CACHE_TTL_S_MIN, limits::CACHE_TTL_S_MAX,
                                     cache_ttl_s))
            return *e;
        submit.cache_ttl_s = static_cast<std::uint32_t>(cache_ttl_s);
        if (auto dedupe = options->find("dedupe"); dedupe != options->end()) {
            if (!dedupe->is_boolean()) return invalid_request("options.dedupe must be true or false");
            submit.dedupe = dedupe->get<bool>();
            // A job joins one queued or running now; a scheduled one would join a run it did not ask for.
            if (submit.dedupe && submit.run_at_ms != 0)
                return invalid_request("options.dedupe joins a job that is queued or running now: it does not "
                                       "combine with options.delay_s or options.run_at");
        }

        if (auto hook = options->find("webhook"); hook != options->end()) {
            auto parsed = parse_webhook(*hook, "options.webhook", webhook_allow_nets);
            if (auto* error = std::get_if<ApiError>(&parsed)) return *error;
            auto& spec = std::get<WebhookSpec>(parsed);
            submit.webhook_url = std::move(spec.url);
            submit.webhook_events = std::move(spec.events);
        }

    }
    submit.timeout_s = static_cast<std::uint32_t>(timeout_s);
    submit.max_attempts = static_cast<std::uint32_t>(max_attempts);
    submit.priority = priority;

    json input = nullptr;
    if (auto it = doc.find("input"); it != doc.end()) input = std::move(*it);
    const std::vector<std::uint8_t> packed = json::to_msgpack(input);
    if (packed.size() > max_input_bytes)
        return api_error(errors::INPUT_TOO_LARGE, "input is " + std::to_string(packed.size()) +
                                                      " bytes as msgpack; the limit is " +
                                                      std::to_string(max_input_bytes) + " bytes");
    submit.input.assign(packed.begin(), packed.end());
    if (input_out != nullptr) *input_out = std::move(input);
    if (timing_out != nullptr) *timing_out = std::move(timing);
    return submit;
}

std::optional<ApiError> check_idempotency_key(std::string_view key) {
    if (valid_idempotency_key(key)) return std::nullopt;
    return invalid_request(std::string(IDEMPOTENCY_HEADER) + " must be 1 to " +
                           std::to_string(limits::MAX_IDEMPOTENCY_KEY) + " visible ASCII characters (0x21-0x7e)");
}

std::string request_hash(const proto::Submit& submit, const json& timing) {
    // A msgpack array: every part is length-delimited, so no two requests share a form. The
    // input is already canonical msgpack (nlohmann keeps object keys sorted).
    json canonical = json::array(
        {"sluice.submit.v1", submit.type,
         json::binary(std::vector<std::uint8_t>(submit.input.begin(), submit.input.end())),
         submit.priority, submit.max_attempts, submit.timeout_s});
    if (!submit.concurrency_key.empty()) {
        canonical.push_back(submit.concurrency_key);
        canonical.push_back(submit.concurrency_limit);
    }
    if (submit.disconnect_grace_ms != 0) {
        canonical.push_back("on_disconnect");
        canonical.push_back(submit.disconnect_grace_ms);
    }
    if (timing.is_object() && !timing.empty()) canonical.push_back(timing);

    if (!submit.webhook_url.empty()) {
        canonical.push_back(submit.webhook_url);
        canonical.push_back(submit.webhook_events);
    }
    if (submit.cache_ttl_s != 0) {
        canonical.push_back("cache_ttl_s");
        canonical.push_back(submit.cache_ttl_s);
    }
    if (submit.dedupe) canonical.push_back("dedupe");

    return sha256_hex(json::to_msgpack(canonical));
}

std::string sha256_hex(const std::vector<std::uint8_t>& bytes) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed (OpenSSL EVP_Digest)");
    static constexpr char HEX[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(length * 2);
    for (unsigned int i = 0; i < length; ++i) {
        hex += HEX[digest[i] >> 4];
        hex += HEX[digest[i] & 0x0f];
    }
    return hex;
}

Checked<int> parse_wait(std::string_view text) {
    const auto value = parse_unsigned(text);
    if (!value || *value > static_cast<std::uint64_t>(MAX_RESULT_WAIT_S))
        return invalid_request("wait must be an integer number of seconds between 0 and " +
                               std::to_string(MAX_RESULT_WAIT_S));
    return static_cast<int>(*value);
}

Checked<Page> parse_page(const std::map<std::string, std::string>& query) {
    Page page;
    if (auto it = query.find("limit"); it != query.end()) {
        const auto value = parse_unsigned(it->second);
        if (!value || *value < static_cast<std::uint64_t>(DEAD_LIMIT_MIN) ||
            *value > static_cast<std::uint64_t>(DEAD_LIMIT_MAX))
            return invalid_request("limit must be an integer between " +
                                   std::to_string(DEAD_LIMIT_MIN) + " and " +
                                   std::to_string(DEAD_LIMIT_MAX));
        page.limit = static_cast<std::int64_t>(*value);
    }
    if (auto it = query.find("offset"); it != query.end()) {
        const auto value = parse_unsigned(it->second);
        if (!value || *value > static_cast<std::uint64_t>(DEAD_OFFSET_MAX))
            return invalid_request("offset must be an integer between 0 and " +
                                   std::to_string(DEAD_OFFSET_MAX));
        page.offset = static_cast<std::int64_t>(*value);
    }
    return page;
}

DeadPageBody::DeadPageBody(const Page& page, std::size_t max_bytes, std::string_view member)
    : page_(page), max_bytes_(max_bytes) {
    body_.begin_object().key(member).begin_array();
}

bool DeadPageBody::add(std::string_view job_json) {
    // Room kept for what follows the jobs: `],"total":T,"limit":L,"offset":O,"next_offset":N}`,
    // four integers of at most 20 digits each.
    constexpr std::size_t TAIL_BYTES = 128;
    const std::size_t with_job = body_.size() + 1 + job_json.size() + TAIL_BYTES;  // 1: its comma
    if (listed_any_ && with_job > max_bytes_) return false;
    body_.raw(job_json);
    listed_any_ = true;
    ++taken_;
    return true;
}

void DeadPageBody::skip() { ++taken_; }

std::string DeadPageBody::finish(std::int64_t total) {
    body_.end_array().key("total").integer(total);
    body_.key("limit").integer(page_.limit).key("offset").integer(page_.offset);
    if (const std::int64_t next = page_.offset + taken_; next < total) body_.key("next_offset").integer(next);
    return body_.end_object().take();
}

Target split_target(std::string_view target) {
    Target out;
    const std::size_t q = target.find('?');
    out.path = std::string(target.substr(0, q));
    if (q == std::string_view::npos) return out;
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        const std::size_t eq = pair.find('=');
        std::string key = percent_decode(pair.substr(0, eq));
        std::string value = eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
        out.query.emplace(std::move(key), std::move(value));  // the first occurrence wins
    }
    return out;
}

bool match_path(std::string_view pattern, std::string_view path, std::string& id) {
    const auto want = split_path(pattern);
    const auto got = split_path(path);
    if (want.size() != got.size()) return false;
    for (std::size_t i = 0; i < want.size(); ++i) {
        if (want[i] == "{id}") {
            if (got[i].empty()) return false;
            id = std::string(got[i]);
        } else if (want[i] != got[i]) {
            return false;
        }
    }
    return true;
}

HttpResult submit_result(const proto::Submit& submit, const proto::Reply& reply, std::string_view token_secret,
                         std::int64_t token_expires_s, const std::string* cached_result) {
    if (reply.code == errors::OUTCOME_UNKNOWN.name) {
        const std::string self = job_path(submit.job_id);
        std::string message = "the broker did not answer in time, so the job may have been stored, as " + self + ": ";
        message += submit.idempotency_key.empty()
                       ? "look it up before submitting again, or submit with an Idempotency-Key, which makes a "
                         "retry safe"
                       : "retry with the same Idempotency-Key, which stores it at most once";
        HttpResult result = error_result(errors::OUTCOME_UNKNOWN, std::move(message));
        result.headers.emplace_back("Retry-After", "1");
        return result;
    }
    if (reply.code == errors::RATE_LIMITED.name) {
        const std::chrono::milliseconds retry_after(reply.retry_after_ms);
        return rate_limited("submits", submit.submits_per_s, TokenBucket::Taken{false, 0, retry_after, retry_after});
    }
    if (reply.status < 200 || reply.status > 299) return reply_error(reply);
    // 202: the job we sent was stored. 200: the key was seen before with the same request;
    // the broker names the original job (and its current state) and stored nothing new.
    const bool replayed = reply.status == 200;
    const std::string& id = replayed && !reply.job_id.empty() ? reply.job_id : submit.job_id;
    const std::string status = reply.state.empty() ? "queued" : reply.state;
    const std::string self = job_path(id);
    HttpResult result;
    result.status = reply.cached ? 200 : 202;
    result.headers.emplace_back("Location", self);
    if (replayed && !reply.cached) result.headers.emplace_back(std::string(REPLAYED_HEADER), "true");
    JsonWriter w;
    w.begin_object().key("id").string(id).key("type").string(submit.type).key("status").string(status);
    w.key("links").begin_object().key("self").string(self);
    const std::string token = "?token=" + read_token(token_secret, id, token_expires_s);
    w.key("events").string(self + "/events" + token).key("result").string(self + "/result" + token);
    w.end_object();
    if (!reply.joined.empty()) w.key("joined").string(reply.joined);
    if (reply.cached) {
        w.key("cached").raw("true");
        msgpack_member(w, "result", cached_result);
    }
    w.end_object();
    result.body = w.take();
    return result;
}

HttpResult retry_result(std::string_view job_id, const proto::Reply& reply) {
    if (reply.status < 200 || reply.status > 299) return reply_error(reply);
    HttpResult result;
    result.status = 200;
    result.body = id_status_body(job_id, reply.state.empty() ? "queued" : reply.state);
    return result;
}

HttpResult cancel_result(std::string_view job_id, const proto::Reply& reply) {
    if (reply.status < 200 || reply.status > 299) return reply_error(reply);
    HttpResult result;
    result.status = 200;
    result.body = id_status_body(job_id, "canceled");
    return result;
}

}  // namespace sluice::api
