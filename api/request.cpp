// Pure request/response logic of the HTTP api (see request.hpp).
#include "request.hpp"

#include <openssl/evp.h>
#include <sys/random.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <ctime>
#include <stdexcept>
#include <system_error>

namespace sluice::api {
namespace {

ApiError invalid_request(std::string message) {
    return ApiError{422, "invalid_request", std::move(message)};
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

std::optional<std::int64_t> parse_int(std::string_view text) {
    std::int64_t value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
    return value;
}

std::optional<double> parse_double(std::string_view text) {
    double value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
    return value;
}

// Returns the hash field `name`, or nullptr when it is absent or empty.
const std::string* hash_field(const std::map<std::string, std::string>& hash, const char* name) {
    auto it = hash.find(name);
    if (it == hash.end() || it->second.empty()) return nullptr;
    return &it->second;
}

json int_or_null(const std::string* text) {
    if (!text) return nullptr;
    if (auto value = parse_int(*text)) return *value;
    return nullptr;
}

// A timestamp field in ms; absent, empty, unparseable or 0 (never a real time) gives null.
json time_or_null(const std::string* text) {
    if (!text) return nullptr;
    auto value = parse_int(*text);
    if (!value || *value <= 0) return nullptr;
    return iso8601_ms(*value);
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

struct RouteEntry {
    std::string_view method;
    std::string_view pattern;  // "{id}" matches one non-empty segment
    Route route;
};

// The whole routing table, in the style of cpp-httplib: method + pattern -> route.
constexpr std::array<RouteEntry, 9> ROUTES{{
    {"GET", "/healthz", Route::HEALTHZ},
    {"GET", "/readyz", Route::READYZ},
    {"POST", "/v1/jobs", Route::SUBMIT_JOB},
    {"GET", "/v1/jobs/{id}", Route::GET_JOB},
    {"DELETE", "/v1/jobs/{id}", Route::CANCEL_JOB},
    {"GET", "/v1/jobs/{id}/result", Route::GET_RESULT},
    {"GET", "/v1/jobs/{id}/events", Route::GET_EVENTS},
    {"POST", "/v1/jobs/{id}/retry", Route::RETRY_JOB},
    {"GET", "/v1/dead", Route::LIST_DEAD},
}};

// Matches `path` against `pattern`; on success stores the {id} segment in `id`.
bool match_pattern(std::string_view pattern, std::string_view path, std::string& id) {
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

std::string job_path(std::string_view id) { return "/v1/jobs/" + std::string(id); }

// The error half of a broker REPLY: its own status and code when they look like an error,
// otherwise a 502 saying the broker answered something unexpected.
HttpResult reply_error(const proto::Reply& reply) {
    if (reply.status >= 400 && reply.status <= 599) {
        ApiError error{static_cast<int>(reply.status),
                       reply.code.empty() ? "broker_error" : reply.code,
                       reply.message.empty() ? (reply.code.empty() ? "broker error" : reply.code)
                                             : reply.message};
        HttpResult result = error_result(error);
        if (reply.status == 429) result.headers.emplace_back("Retry-After", "1");
        return result;
    }
    return error_result({502, "broker_error",
                         "unexpected broker reply status " + std::to_string(reply.status)});
}

}  // namespace

std::string dump_json(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_body(std::string_view code, std::string_view message) {
    return dump_json(json{{"error", {{"code", code}, {"message", message}}}});
}

HttpResult error_result(const ApiError& error) {
    HttpResult result;
    result.status = error.status;
    result.body = error_body(error.code, error.message);
    return result;
}

bool is_valid_job_type(std::string_view type) {
    if (type.empty() || type.size() > 128) return false;
    for (char c : type) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                        c == '_' || c == '.' || c == ':' || c == '-';
        if (!ok) return false;
    }
    return true;
}

Checked<proto::Submit> parse_submit(std::string_view body, std::string job_id,
                                    std::optional<std::string_view> idempotency_key) {
    if (idempotency_key) {
        if (auto e = check_idempotency_key(*idempotency_key)) return *e;
    }
    bool too_deep = false;
    json::parser_callback_t guard = [&too_deep](int depth, json::parse_event_t, json&) {
        if (depth > MAX_JSON_DEPTH) too_deep = true;
        return !too_deep;
    };
    json doc = json::parse(body.begin(), body.end(), guard, /*allow_exceptions=*/false);
    if (too_deep)
        return invalid_request("request body nests deeper than " + std::to_string(MAX_JSON_DEPTH) +
                               " levels");
    if (doc.is_discarded()) return ApiError{400, "invalid_json", "request body is not valid JSON"};
    if (!doc.is_object())
        return ApiError{400, "invalid_json", "request body must be a JSON object"};

    proto::Submit submit;
    submit.job_id = std::move(job_id);
    submit.tenant = std::string(DEFAULT_TENANT);

    auto type = doc.find("type");
    if (type == doc.end() || type->is_null()) return invalid_request("type is required");
    if (!type->is_string()) return invalid_request("type must be a string");
    const auto& type_text = type->get_ref<const std::string&>();
    if (type_text.empty()) return invalid_request("type must not be empty");
    if (!is_valid_job_type(type_text))
        return invalid_request("type must match [A-Za-z0-9_.:-]{1,128}");
    submit.type = type_text;

    std::int64_t timeout_s = TIMEOUT_S_DEFAULT;
    std::int64_t max_attempts = MAX_ATTEMPTS_DEFAULT;
    std::int64_t priority = PRIORITY_DEFAULT;
    if (auto options = doc.find("options"); options != doc.end()) {
        if (!options->is_object()) return invalid_request("options must be an object");
        for (const auto& item : options->items()) {
            const auto& key = item.key();
            if (key != "timeout_s" && key != "max_attempts" && key != "priority")
                return invalid_request("options." + key +
                                       " is not a known option (timeout_s, max_attempts, priority)");
        }
        if (auto e = read_int_option(*options, "timeout_s", TIMEOUT_S_MIN, TIMEOUT_S_MAX, timeout_s))
            return *e;
        if (auto e = read_int_option(*options, "max_attempts", MAX_ATTEMPTS_MIN, MAX_ATTEMPTS_MAX,
                                     max_attempts))
            return *e;
        if (auto e = read_int_option(*options, "priority", PRIORITY_MIN, PRIORITY_MAX, priority))
            return *e;
    }
    submit.timeout_s = static_cast<std::uint32_t>(timeout_s);
    submit.max_attempts = static_cast<std::uint32_t>(max_attempts);
    submit.priority = priority;

    json input = nullptr;
    if (auto it = doc.find("input"); it != doc.end()) input = std::move(*it);
    const std::vector<std::uint8_t> packed = json::to_msgpack(input);
    submit.input.assign(packed.begin(), packed.end());
    if (idempotency_key) {
        submit.idempotency_key = std::string(*idempotency_key);
        submit.request_hash = request_hash(submit);
    }
    return submit;
}

std::optional<ApiError> check_idempotency_key(std::string_view key) {
    const std::string rule = std::string(IDEMPOTENCY_HEADER) + " must be 1 to " +
                             std::to_string(MAX_IDEMPOTENCY_KEY) +
                             " visible ASCII characters (0x21-0x7e)";
    if (key.empty() || key.size() > MAX_IDEMPOTENCY_KEY) return invalid_request(rule);
    for (char c : key)
        if (c < 0x21 || c > 0x7e) return invalid_request(rule);
    return std::nullopt;
}

std::string request_hash(const proto::Submit& submit) {
    // A msgpack array: every part is length-delimited, so no two requests share a form. The
    // input is already canonical msgpack (nlohmann keeps object keys sorted).
    const json canonical = json::array(
        {"sluice.submit.v1", submit.type,
         json::binary(std::vector<std::uint8_t>(submit.input.begin(), submit.input.end())),
         submit.priority, submit.max_attempts, submit.timeout_s});
    const std::vector<std::uint8_t> bytes = json::to_msgpack(canonical);
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

std::string make_job_id() {
    std::array<unsigned char, 16> bytes{};
    std::size_t filled = 0;
    while (filled < bytes.size()) {
        const ssize_t n = ::getrandom(bytes.data() + filled, bytes.size() - filled, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "getrandom");
        }
        filled += static_cast<std::size_t>(n);
    }
    bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);  // version 4
    bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
    static constexpr char HEX[] = "0123456789abcdef";
    std::string id;
    id.reserve(36);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) id += '-';
        id += HEX[bytes[i] >> 4];
        id += HEX[bytes[i] & 0x0f];
    }
    return id;
}

bool is_uuid(std::string_view id) {
    if (id.size() != 36) return false;
    for (std::size_t i = 0; i < id.size(); ++i) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (id[i] != '-') return false;
        } else if (hex_value(id[i]) < 0) {
            return false;
        }
    }
    return true;
}

std::string iso8601_ms(std::int64_t ms) {
    std::int64_t seconds = ms / 1000;
    std::int64_t millis = ms % 1000;
    if (millis < 0) {
        millis += 1000;
        seconds -= 1;
    }
    const std::time_t t = static_cast<std::time_t>(seconds);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char stamp[48];
    const std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    char out[64];
    std::snprintf(out, sizeof out, "%.*s.%03dZ", static_cast<int>(n), stamp, static_cast<int>(millis));
    return out;
}

bool is_terminal_status(std::string_view status) {
    return status == "succeeded" || status == "failed" || status == "canceled";
}

json msgpack_to_json(std::string_view bytes) {
    if (bytes.empty()) return nullptr;
    json value = json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true,
                                    /*allow_exceptions=*/false);
    if (value.is_discarded()) return nullptr;
    return value;
}

json job_to_json(const std::map<std::string, std::string>& hash,
                 const std::vector<std::string>& history) {
    auto text_or_null = [&](const char* name) -> json {
        if (const std::string* v = hash_field(hash, name)) return *v;
        return nullptr;
    };
    json body = json::object();
    body["id"] = text_or_null("id");
    body["type"] = text_or_null("type");
    body["tenant"] = text_or_null("tenant");
    body["status"] = text_or_null("status");
    body["priority"] = int_or_null(hash_field(hash, "priority"));
    body["max_attempts"] = int_or_null(hash_field(hash, "max_attempts"));
    body["timeout_s"] = int_or_null(hash_field(hash, "timeout_s"));
    body["attempts"] = int_or_null(hash_field(hash, "attempts"));
    body["created_at"] = time_or_null(hash_field(hash, "created_ms"));
    body["started_at"] = time_or_null(hash_field(hash, "started_ms"));
    body["finished_at"] = time_or_null(hash_field(hash, "finished_ms"));
    const std::string* result = hash_field(hash, "result");
    body["result"] = result ? msgpack_to_json(*result) : json(nullptr);
    body["error"] = text_or_null("error");
    const json redeliveries = int_or_null(hash_field(hash, "redeliveries"));
    body["redeliveries"] = redeliveries.is_null() ? json(0) : redeliveries;
    body["history"] = history_to_json(history);
    return body;
}

std::optional<json> history_entry_to_json(std::string_view entry) {
    if (entry.empty()) return std::nullopt;
    const json v = json::from_msgpack(entry.begin(), entry.end(), /*strict=*/true,
                                      /*allow_exceptions=*/false);
    if (v.is_discarded() || !v.is_array() || v.size() < 6) return std::nullopt;
    // Lenient where a Lua encoder might differ (a whole float for a time, nil for no error),
    // strict about the shape.
    auto is_time = [](const json& t) { return t.is_number() || t.is_null(); };
    const bool attempt_ok = v[0].is_number_unsigned() ||
                            (v[0].is_number_integer() && v[0].get<std::int64_t>() >= 0);
    if (!attempt_ok || !v[1].is_string() || !is_time(v[2]) || !is_time(v[3]) ||
        !v[4].is_string() || !(v[5].is_string() || v[5].is_null()))
        return std::nullopt;
    auto time_of = [](const json& t) -> json {
        std::int64_t ms = 0;
        if (t.is_number_unsigned()) {
            const auto u = t.get<std::uint64_t>();
            ms = u > static_cast<std::uint64_t>(INT64_MAX) ? 0 : static_cast<std::int64_t>(u);
        } else if (t.is_number_integer()) {
            ms = t.get<std::int64_t>();
        } else if (t.is_number_float()) {
            const double d = t.get<double>();
            ms = d > 0 && d < 9.0e15 ? static_cast<std::int64_t>(d) : 0;  // NaN fails both
        }
        return ms > 0 ? json(iso8601_ms(ms)) : json(nullptr);  // 0: not started / not ended
    };
    const std::string error = v[5].is_string() ? v[5].get<std::string>() : std::string();
    json out = json::object();
    out["attempt"] = v[0].get<std::uint64_t>();
    out["worker"] = v[1];
    out["started_at"] = time_of(v[2]);
    out["finished_at"] = time_of(v[3]);
    out["outcome"] = v[4];
    out["error"] = error.empty() ? json(nullptr) : json(error);
    return out;
}

json history_to_json(const std::vector<std::string>& entries) {
    json out = json::array();
    for (const auto& entry : entries)
        if (auto decoded = history_entry_to_json(entry)) out.push_back(std::move(*decoded));
    return out;
}

const std::string* event_field(const EventEntry& entry, std::string_view name) {
    for (const auto& [key, value] : entry.fields)
        if (key == name) return &value;
    return nullptr;
}

std::optional<std::uint64_t> event_seq(const EventEntry& entry) {
    if (const std::string* seq = event_field(entry, "seq")) {
        if (auto v = parse_last_event_id(*seq)) return v;
    }
    return parse_last_event_id(std::string_view(entry.id).substr(0, entry.id.find('-')));
}

std::string format_sse_event(std::string_view job_id, const EventEntry& entry) {
    const std::uint64_t seq = event_seq(entry).value_or(0);
    const std::string* event = event_field(entry, "event");
    const std::string name = event ? *event : "message";
    json data = json::object();
    data["job_id"] = job_id;
    data["seq"] = seq;
    data["event"] = name;
    data["time"] = time_or_null(event_field(entry, "ts"));
    if (const std::string* v = event_field(entry, "attempt")) {
        if (auto n = parse_int(*v)) data["attempt"] = *n;
    }
    for (const char* text_field : {"worker", "message", "data", "error"}) {
        if (const std::string* v = event_field(entry, text_field)) data[text_field] = *v;
    }
    if (const std::string* v = event_field(entry, "fraction")) {
        if (auto f = parse_double(*v)) data["fraction"] = *f;
    }
    if (const std::string* v = event_field(entry, "result")) data["result"] = msgpack_to_json(*v);
    // The event name goes on an SSE line: keep line breaks out of it.
    std::string safe_name;
    for (char c : name) safe_name += (c == '\n' || c == '\r') ? ' ' : c;
    return "id: " + std::to_string(seq) + "\nevent: " + safe_name + "\ndata: " + dump_json(data) +
           "\n\n";
}

std::optional<std::uint64_t> parse_last_event_id(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    if (text.empty()) return std::nullopt;
    for (char c : text)
        if (c < '0' || c > '9') return std::nullopt;
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
    return value;
}

Checked<int> parse_wait(std::string_view text) {
    const auto value = parse_last_event_id(text);
    if (!value || *value > static_cast<std::uint64_t>(MAX_RESULT_WAIT_S))
        return invalid_request("wait must be an integer number of seconds between 0 and " +
                               std::to_string(MAX_RESULT_WAIT_S));
    return static_cast<int>(*value);
}

Checked<Page> parse_page(const std::map<std::string, std::string>& query) {
    Page page;
    if (auto it = query.find("limit"); it != query.end()) {
        const auto value = parse_last_event_id(it->second);
        if (!value || *value < static_cast<std::uint64_t>(DEAD_LIMIT_MIN) ||
            *value > static_cast<std::uint64_t>(DEAD_LIMIT_MAX))
            return invalid_request("limit must be an integer between " +
                                   std::to_string(DEAD_LIMIT_MIN) + " and " +
                                   std::to_string(DEAD_LIMIT_MAX));
        page.limit = static_cast<std::int64_t>(*value);
    }
    if (auto it = query.find("offset"); it != query.end()) {
        const auto value = parse_last_event_id(it->second);
        if (!value || *value > static_cast<std::uint64_t>(DEAD_OFFSET_MAX))
            return invalid_request("offset must be an integer between 0 and " +
                                   std::to_string(DEAD_OFFSET_MAX));
        page.offset = static_cast<std::int64_t>(*value);
    }
    return page;
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

RouteMatch match_route(std::string_view method, std::string_view path) {
    RouteMatch match;
    for (const auto& entry : ROUTES) {
        std::string id;
        if (!match_pattern(entry.pattern, path, id)) continue;
        if (entry.method == method) {
            match.kind = RouteMatch::FOUND;
            match.route = entry.route;
            match.job_id = std::move(id);
            match.allow.clear();
            return match;
        }
        match.kind = RouteMatch::METHOD_NOT_ALLOWED;
        if (!match.allow.empty()) match.allow += ", ";
        match.allow += entry.method;
    }
    return match;
}

HttpResult submit_result(const proto::Submit& submit, const proto::Reply& reply) {
    if (reply.status < 200 || reply.status > 299) return reply_error(reply);
    // 202: the job we sent was stored. 200: the key was seen before with the same request;
    // the broker names the original job (and its current state) and stored nothing new.
    const bool replayed = reply.status == 200;
    const std::string& id = replayed && !reply.job_id.empty() ? reply.job_id : submit.job_id;
    const std::string status = replayed && !reply.state.empty() ? reply.state : "queued";
    const std::string self = job_path(id);
    HttpResult result;
    result.status = 202;
    result.headers.emplace_back("Location", self);
    if (replayed) result.headers.emplace_back(std::string(REPLAYED_HEADER), "true");
    result.body = dump_json(json{{"id", id},
                                 {"type", submit.type},
                                 {"status", status},
                                 {"links",
                                  {{"self", self},
                                   {"events", self + "/events"},
                                   {"result", self + "/result"}}}});
    return result;
}

HttpResult retry_result(std::string_view job_id, const proto::Reply& reply) {
    if (reply.status < 200 || reply.status > 299) return reply_error(reply);
    HttpResult result;
    result.status = 200;
    result.body = dump_json(
        json{{"id", job_id}, {"status", reply.state.empty() ? std::string("queued") : reply.state}});
    return result;
}

HttpResult cancel_result(std::string_view job_id, const proto::Reply& reply) {
    if (reply.status < 200 || reply.status > 299) return reply_error(reply);
    HttpResult result;
    result.status = 200;
    result.body = dump_json(json{{"id", job_id}, {"status", "canceled"}});
    return result;
}

}  // namespace sluice::api
