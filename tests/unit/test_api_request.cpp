// Unit tests of the api's pure request logic (api/request.hpp): submit validation and the
// SUBMIT it builds, Idempotency-Key and request hash, job ids, job hash and attempt history ->
// JSON, event entry -> SSE text, query parsing, route patterns and the HTTP answers built from broker
// REPLYs.
#include "job_id.hpp"
#include "credentials.hpp"
#include "request.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace sluice::api;
using sluice::is_uuid;
using sluice::proto::Reply;
using sluice::proto::Submit;

namespace {

const std::string ID = "0b7c1f0e-2d4e-4a7b-9c1d-3e5f7a9b1c2d";

// Returns the error of parse_submit(body), failing the test if it succeeded.
ApiError submit_error(const std::string& body) {
    auto result = parse_submit(body, ID);
    REQUIRE_MESSAGE(std::holds_alternative<ApiError>(result), body);
    return std::get<ApiError>(result);
}

Submit submit_ok(const std::string& body) {
    auto result = parse_submit(body, ID);
    if (auto* e = std::get_if<ApiError>(&result)) FAIL_CHECK(body << " -> " << e->code << ": " << e->message);
    REQUIRE(std::holds_alternative<Submit>(result));
    return std::get<Submit>(result);
}

void check_invalid(const std::string& body, const std::string& field) {
    const ApiError e = submit_error(body);
    CHECK_MESSAGE(e.status == 422, body);
    CHECK_MESSAGE(e.code == "invalid_request", body);
    CHECK_MESSAGE(e.message.find(field) != std::string::npos, body << " -> " << e.message);
}

json input_of(const Submit& s) {
    return json::from_msgpack(std::vector<std::uint8_t>(s.input.begin(), s.input.end()));
}

}  // namespace

TEST_CASE("submit: defaults, tenant, id and input as msgpack") {
    const Submit s = submit_ok(R"({"type": "echo"})");
    CHECK(s.job_id == ID);
    CHECK(s.tenant == "default");
    CHECK(s.type == "echo");
    CHECK(s.timeout_s == 300);
    CHECK(s.max_attempts == 3);
    CHECK(s.priority == 0);
    CHECK(s.req_id == 0);
    CHECK(input_of(s).is_null());

    const Submit t = submit_ok(
        R"({"type": "llm.summarize:v2-x_1", "input": {"text": "héllo", "n": [1, 2.5, null, true]},
            "options": {"timeout_s": 86400, "max_attempts": 100, "priority": 9}, "extra": 1})");
    CHECK(t.type == "llm.summarize:v2-x_1");
    CHECK(t.timeout_s == 86400);
    CHECK(t.max_attempts == 100);
    CHECK(t.priority == 9);
    CHECK(input_of(t) == json::parse(R"({"text": "héllo", "n": [1, 2.5, null, true]})"));

    const Submit u = submit_ok(R"({"type": "a", "options": {"timeout_s": 1, "max_attempts": 1, "priority": 0}})");
    CHECK(u.timeout_s == 1);
    CHECK(u.max_attempts == 1);
    CHECK(submit_ok(R"({"type": "a", "options": {}})").timeout_s == 300);
    CHECK(input_of(submit_ok(R"({"type": "a", "input": "text"})")) == "text");
    CHECK(input_of(submit_ok(R"({"type": "a", "input": 7})")) == 7);
}

TEST_CASE("submit: body that is not a JSON object is 400 invalid_json") {
    for (const char* body : {"", "nope", "{\"type\": \"echo\",", "[1, 2]", "\"echo\"", "null", "3"}) {
        const ApiError e = submit_error(body);
        CHECK_MESSAGE(e.status == 400, body);
        CHECK_MESSAGE(e.code == "invalid_json", body);
        CHECK_FALSE(e.message.empty());
    }
}

TEST_CASE("submit: bad type is 422 naming the field") {
    check_invalid(R"({"input": 1})", "type");
    check_invalid(R"({"type": null})", "type");
    check_invalid(R"({"type": ""})", "type");
    check_invalid(R"({"type": 7})", "type");
    check_invalid(R"({"type": ["echo"]})", "type");
    check_invalid(R"({"type": "bad type!"})", "type");
    check_invalid(R"({"type": "slash/no"})", "type");
    check_invalid(R"({"type": "é"})", "type");
    check_invalid(R"({"type": ")" + std::string(129, 'a') + R"("})", "type");
    CHECK(submit_ok(R"({"type": ")" + std::string(128, 'a') + R"("})").type.size() == 128);
}

TEST_CASE("submit: bad options are 422 naming the field") {
    check_invalid(R"({"type": "a", "options": []})", "options");
    check_invalid(R"({"type": "a", "options": null})", "options");
    check_invalid(R"({"type": "a", "options": 5})", "options");
    check_invalid(R"({"type": "a", "options": {"bogus": 1}})", "options.bogus");
    check_invalid(R"({"type": "a", "options": {"timeout_s": 0}})", "options.timeout_s");
    check_invalid(R"({"type": "a", "options": {"timeout_s": 86401}})", "options.timeout_s");
    check_invalid(R"({"type": "a", "options": {"timeout_s": "10"}})", "options.timeout_s");
    check_invalid(R"({"type": "a", "options": {"timeout_s": 10.5}})", "options.timeout_s");
    check_invalid(R"({"type": "a", "options": {"timeout_s": 10.0}})", "options.timeout_s");
    check_invalid(R"({"type": "a", "options": {"timeout_s": true}})", "options.timeout_s");
    check_invalid(R"({"type": "a", "options": {"timeout_s": null}})", "options.timeout_s");
    check_invalid(R"({"type": "a", "options": {"timeout_s": 18446744073709551615}})", "options.timeout_s");
    check_invalid(R"({"type": "a", "options": {"timeout_s": -9223372036854775808}})", "options.timeout_s");
    check_invalid(R"({"type": "a", "options": {"max_attempts": 0}})", "options.max_attempts");
    check_invalid(R"({"type": "a", "options": {"max_attempts": 101}})", "options.max_attempts");
    check_invalid(R"({"type": "a", "options": {"max_attempts": 1000}})", "options.max_attempts");
    check_invalid(R"({"type": "a", "options": {"priority": -1}})", "options.priority");
    check_invalid(R"({"type": "a", "options": {"priority": 10}})", "options.priority");
    check_invalid(R"({"type": "a", "options": {"priority": "high"}})", "options.priority");
}

TEST_CASE("submit: a concurrency key, its limit 1 unless given, bounded and checked") {
    const Submit none = submit_ok(R"({"type": "a"})");
    CHECK(none.concurrency_key.empty());
    CHECK(none.concurrency_limit == 0);
    const Submit one = submit_ok(R"({"type": "a", "options": {"concurrency_key": "user:42"}})");
    CHECK(one.concurrency_key == "user:42");
    CHECK(one.concurrency_limit == 1);
    const std::string longest(sluice::limits::MAX_CONCURRENCY_KEY, '~');
    const Submit most = submit_ok(R"({"type": "a", "options": {"concurrency_key": ")" + longest +
                                  R"(", "concurrency_limit": 1000}})");
    CHECK(most.concurrency_key == longest);
    CHECK(most.concurrency_limit == 1000);

    check_invalid(R"({"type": "a", "options": {"concurrency_key": ")" + longest + R"(!"}})", "options.concurrency_key");
    for (const char* key : {R"("")", R"("has space")", R"("é")", "7", "null", R"(["k"])"})
        check_invalid(R"({"type": "a", "options": {"concurrency_key": )" + std::string(key) + "}}",
                      "options.concurrency_key");
    for (const char* limit : {"0", "1001", "100000", "2.5", R"("3")", "null", "-1"})
        check_invalid(R"({"type": "a", "options": {"concurrency_key": "k", "concurrency_limit": )" + std::string(limit) +
                          "}}",
                      "options.concurrency_limit");
    check_invalid(R"({"type": "a", "options": {"concurrency_limit": 2}})", "options.concurrency_limit needs");
    CHECK(sluice::valid_concurrency("", 0));
    CHECK_FALSE(sluice::valid_concurrency("", 1));
    CHECK_FALSE(sluice::valid_concurrency("k", 0));
    CHECK(sluice::valid_concurrency("k", 1000));
}

TEST_CASE("submit: options.webhook, its events the terminal ones unless given, checked with stable codes") {
    CHECK(submit_ok(R"({"type": "a"})").webhook_url.empty());
    const Submit plain = submit_ok(R"({"type": "a", "options": {"webhook": {"url": "https://h.example/x?y=1"}}})");
    CHECK(plain.webhook_url == "https://h.example/x?y=1");
    CHECK(plain.webhook_events == std::vector<std::string>{"succeeded", "failed", "canceled"});
    const Submit some = submit_ok(R"({"type": "a", "options": {"webhook": {"url": "http://h.example", "events": ["queued"]}}})");
    CHECK(some.webhook_events == std::vector<std::string>{"queued"});
    auto code_of = [](const std::string& body) {
        auto parsed = parse_submit(body, ID);
        REQUIRE(std::holds_alternative<sluice::api::ApiError>(parsed));
        return std::get<sluice::api::ApiError>(parsed).code;
    };
    CHECK(code_of(R"({"type": "a", "options": {"webhook": {"url": "http://127.0.0.1/"}}})") == "webhook_target_refused");
    CHECK(code_of(R"({"type": "a", "options": {"webhook": {"url": "gopher://h.example/"}}})") == "invalid_webhook_url");
    CHECK(code_of(R"({"type": "a", "options": {"webhook": {"url": "http://h.example/", "events": ["x"]}}})") ==
          "invalid_webhook_events");
    CHECK(code_of(R"({"type": "a", "options": {"webhook": "http://h.example/"}})") == "invalid_request");
    const auto loopback = std::vector<sluice::webhooks::Net>{sluice::webhooks::Net{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127},
                                                                                  104}};
    CHECK(std::holds_alternative<Submit>(parse_submit(R"({"type": "a", "options": {"webhook": {"url": "http://127.0.0.1/"}}})",
                                                      ID, std::nullopt, sluice::limits::DEFAULT_MAX_INPUT,
                                                      sluice::api::wall_now_ms(), nullptr, loopback)));
}

TEST_CASE("submit: nesting deeper than the limit is refused, at the limit it is fine") {
    auto nested = [](int depth) {
        return R"({"type": "a", "input": )" + std::string(depth, '[') + std::string(depth, ']') + "}";
    };
    CHECK(submit_error(nested(100000)).status == 422);
    CHECK(submit_error(nested(MAX_JSON_DEPTH + 1)).code == "invalid_request");
    submit_ok(nested(MAX_JSON_DEPTH - 1));
}

TEST_CASE("submit: an input over the limit, as msgpack, is 413 giving both numbers") {
    // A string of 100 characters is 102 bytes of msgpack (str 8: 0xd9 and one length byte).
    const std::string body = R"({"type": "echo", "input": ")" + std::string(100, 'x') + R"("})";
    CHECK(std::holds_alternative<Submit>(parse_submit(body, ID, std::nullopt, 102)));
    auto refused = parse_submit(body, ID, std::nullopt, 101);
    REQUIRE(std::holds_alternative<ApiError>(refused));
    const ApiError& e = std::get<ApiError>(refused);
    CHECK(e.status == 413);
    CHECK(e.code == "input_too_large");
    CHECK(e.message == "input is 102 bytes as msgpack; the limit is 101 bytes");
    CHECK(submit_ok(R"({"type": "echo", "input": ")" + std::string(500 * 1024, 'x') + R"("})").type == "echo");
    CHECK(submit_error(R"({"type": "echo", "input": ")" + std::string(513 * 1024, 'x') + R"("})").status == 413);
}

TEST_CASE("Idempotency-Key: valid keys, and 422 naming the header otherwise") {
    CHECK_FALSE(check_idempotency_key("a"));
    CHECK_FALSE(check_idempotency_key("order-42/retry:1?x=\"y\"~!"));
    CHECK_FALSE(check_idempotency_key(std::string(255, 'k')));
    for (const std::string& bad :
         {std::string(), std::string(256, 'k'), std::string("has space"), std::string("tab\there"),
          std::string("del\x7f"), std::string("caf\xc3\xa9"), std::string("nul\0", 4),
          std::string("line\r\nX-Evil: 1")}) {
        const auto e = check_idempotency_key(bad);
        REQUIRE_MESSAGE(e, bad);
        CHECK(e->status == 422);
        CHECK(e->code == "invalid_request");
        CHECK(e->message.find("Idempotency-Key") != std::string::npos);
    }
    // parse_submit checks the key too, and fills key and hash only when one is given.
    auto bad = parse_submit(R"({"type": "echo"})", ID, std::string_view(""));
    REQUIRE(std::holds_alternative<ApiError>(bad));
    CHECK(std::get<ApiError>(bad).message.find("Idempotency-Key") != std::string::npos);
    const Submit plain = submit_ok(R"({"type": "echo"})");
    CHECK(plain.idempotency_key.empty());
    CHECK(plain.request_hash.empty());
    auto keyed = parse_submit(R"({"type": "echo", "input": 1})", ID, std::string_view("k-1"));
    REQUIRE(std::holds_alternative<Submit>(keyed));
    const Submit& k = std::get<Submit>(keyed);
    CHECK(k.idempotency_key == "k-1");
    CHECK(k.request_hash == request_hash(k));
}

TEST_CASE("request hash: canonical, pinned, and sensitive to what matters") {
    auto hash_of = [](const std::string& body) {
        auto parsed = parse_submit(body, ID, std::string_view("key"));
        REQUIRE_MESSAGE(std::holds_alternative<Submit>(parsed), body);
        return std::get<Submit>(parsed).request_hash;
    };
    // Pinned: SHA-256 of msgpack ["sluice.submit.v1", "echo", bin(msgpack input), 0, 3, 300],
    // computed independently with Python's msgpack + hashlib. A change here makes keys stored
    // by an older api conflict with retries through a newer one.
    const std::string pinned = "5786a34fb0fb372d1a799eb85bbc2ea2f0dd8b65a3eed4e3a80cca76bee366c5";
    CHECK(hash_of(R"({"type": "echo", "input": {"b": [1, "x"], "a": null}})") == pinned);
    CHECK(hash_of(R"({"type":"a","options":{"priority":9,"max_attempts":1,"timeout_s":1}})") ==
          "ad78c53284c67bbab95213c5805329411af7289cb8e29e82b48d413bfa6c5ec3");
    // Key order, whitespace, spelled-out defaults and unknown top-level fields do not matter.
    CHECK(hash_of(R"({"input":{"a":null,"b":[1,"x"]},"type":"echo"})") == pinned);
    CHECK(hash_of(R"({"type": "echo", "input": {"a": null, "b": [1, "x"]},
                      "options": {"priority": 0, "max_attempts": 3, "timeout_s": 300}})") == pinned);
    // Everything else does.
    std::set<std::string> distinct{pinned};
    for (const char* body : {
             R"({"type": "echo", "input": {"a": null, "b": [1, "y"]}})",
             R"({"type": "echo", "input": {"a": null, "b": [1, "x"], "c": 1}})",
             R"({"type": "echo2", "input": {"a": null, "b": [1, "x"]}})",
             R"({"type": "echo", "input": {"a": null, "b": [1, "x"]}, "options": {"priority": 1}})",
             R"({"type": "echo", "input": {"a": null, "b": [1, "x"]}, "options": {"max_attempts": 2}})",
             R"({"type": "echo", "input": {"a": null, "b": [1, "x"]}, "options": {"timeout_s": 301}})",
             R"({"type": "echo", "input": {"a": null, "b": [1, "x"]}, "options": {"concurrency_key": "k"}})",
             R"({"type": "echo", "input": {"a": null, "b": [1, "x"]}, "options": {"concurrency_key": "l"}})",
             R"({"type": "echo", "input": {"a": null, "b": [1, "x"]},
                 "options": {"concurrency_key": "k", "concurrency_limit": 2}})",
             R"({"type": "echo", "input": {"a": null, "b": [1, "x"]},
                 "options": {"webhook": {"url": "https://h.example/1"}}})",
             R"({"type": "echo", "input": {"a": null, "b": [1, "x"]},
                 "options": {"webhook": {"url": "https://h.example/2"}}})",
             R"({"type": "echo", "input": {"a": null, "b": [1, "x"]},
                 "options": {"webhook": {"url": "https://h.example/1", "events": ["failed"]}}})",
             R"({"type": "echo"})",
             R"({"type": "echo", "input": "1"})",
             R"({"type": "echo", "input": 1})",
         }) {
        const std::string h = hash_of(body);
        CHECK(h.size() == 64);
        CHECK(h.find_first_not_of("0123456789abcdef") == std::string::npos);
        CHECK_MESSAGE(distinct.insert(h).second, body);
    }
}

TEST_CASE("job type pattern") {
    CHECK(sluice::valid_job_type("echo"));
    CHECK(sluice::valid_job_type("A-Z_a.z:0-9"));
    CHECK_FALSE(sluice::valid_job_type(""));
    CHECK_FALSE(sluice::valid_job_type("a b"));
    CHECK_FALSE(sluice::valid_job_type("a\n"));
    CHECK_FALSE(sluice::valid_job_type(std::string(129, 'x')));
}

TEST_CASE("job ids are random UUIDv4") {
    std::set<std::string> seen;
    int bit_ones[128] = {};
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
        const std::string id = sluice::make_job_id();
        REQUIRE(id.size() == 36);
        CHECK(is_uuid(id));
        CHECK(id[14] == '4');
        CHECK(std::string("89ab").find(id[19]) != std::string::npos);
        for (char c : id) CHECK((c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
        seen.insert(id);
        std::string hex;
        for (char c : id)
            if (c != '-') hex += c;
        for (int nibble = 0; nibble < 32; ++nibble) {
            const int v = std::stoi(hex.substr(nibble, 1), nullptr, 16);
            for (int b = 0; b < 4; ++b) bit_ones[nibble * 4 + b] += (v >> (3 - b)) & 1;
        }
    }
    CHECK(seen.size() == static_cast<std::size_t>(n));
    // Every bit outside the version (48..51) and variant (64..65) is a fair coin: with 2000
    // samples a fair bit lands in 800..1200 except with negligible probability.
    for (int bit = 0; bit < 128; ++bit) {
        if ((bit >= 48 && bit <= 51) || bit == 64 || bit == 65) continue;
        CHECK_MESSAGE(bit_ones[bit] > 800, "bit " << bit);
        CHECK_MESSAGE(bit_ones[bit] < 1200, "bit " << bit);
    }
}

TEST_CASE("UUID shape check") {
    CHECK(is_uuid("00000000-0000-4000-8000-000000000000"));
    CHECK(is_uuid("ABCDEF00-0000-4000-8000-000000000000"));
    CHECK_FALSE(is_uuid("not-a-uuid"));
    CHECK_FALSE(is_uuid(""));
    CHECK_FALSE(is_uuid("00000000-0000-4000-8000-00000000000"));
    CHECK_FALSE(is_uuid("00000000-0000-4000-8000-0000000000000"));
    CHECK_FALSE(is_uuid("00000000_0000-4000-8000-000000000000"));
    CHECK_FALSE(is_uuid("0000000g-0000-4000-8000-000000000000"));
    CHECK_FALSE(is_uuid("../../../etc/passwd-0000-4000-8000-00"));
}

TEST_CASE("the tenant every job records passes the broker's tenant rule") {
    CHECK(sluice::valid_tenant(DEFAULT_TENANT));
    CHECK_FALSE(sluice::valid_tenant("a:b"));
    CHECK_FALSE(sluice::valid_tenant(std::string(sluice::limits::MAX_TENANT_NAME + 1, 't')));
}

TEST_CASE("ISO-8601 timestamps with milliseconds") {
    CHECK(iso8601_ms(0) == "1970-01-01T00:00:00.000Z");
    CHECK(iso8601_ms(1700000000123) == "2023-11-14T22:13:20.123Z");
    CHECK(iso8601_ms(1700000000005) == "2023-11-14T22:13:20.005Z");
    CHECK(iso8601_ms(951782400999) == "2000-02-29T00:00:00.999Z");
}

namespace {
// The job body and a history entry, parsed back.
json job(const JobHash& hash, const std::vector<std::string>& history = {}) {
    return json::parse(job_json(hash, history));
}
std::optional<json> history_entry(std::string_view entry) {
    const auto text = history_entry_json(entry);
    if (!text) return std::nullopt;
    return json::parse(*text);
}
}  // namespace

TEST_CASE("job hash -> JSON body") {
    const std::vector<std::uint8_t> packed = json::to_msgpack(json{{"answer", 42}, {"list", {1, "x"}}});
    JobHash hash{
        {"id", ID}, {"type", "echo"}, {"tenant", "default"}, {"status", "succeeded"},
        {"priority", "5"}, {"max_attempts", "3"}, {"timeout_s", "300"}, {"attempts", "1"},
        {"created_ms", "1700000000123"}, {"started_ms", "1700000000200"},
        {"finished_ms", "1700000000300"}, {"input", "\xc0"}, {"seq", "3"}, {"worker", "w1"},
        {"result", std::string(packed.begin(), packed.end())}};
    const json body = job(hash);
    const std::set<std::string> keys{"id", "type", "tenant", "key_id", "status", "priority", "max_attempts",
                                     "timeout_s", "attempts", "created_at", "started_at",
                                     "finished_at", "run_at", "expire_at", "result", "error", "error_code",
                                     "traceparent", "redeliveries", "rate_limited", "history"};
    std::set<std::string> got;
    for (const auto& item : body.items()) got.insert(item.key());
    CHECK(got == keys);
    CHECK(body["run_at"].is_null());
    CHECK(body["error_code"].is_null());
    CHECK(body["traceparent"].is_null());  // a job stored before traces existed
    CHECK(body["id"] == ID);
    CHECK(body["status"] == "succeeded");
    CHECK(body["priority"] == 5);
    CHECK(body["max_attempts"] == 3);
    CHECK(body["timeout_s"] == 300);
    CHECK(body["attempts"] == 1);
    CHECK(body["created_at"] == "2023-11-14T22:13:20.123Z");
    CHECK(body["started_at"] == "2023-11-14T22:13:20.200Z");
    CHECK(body["finished_at"] == "2023-11-14T22:13:20.300Z");
    CHECK(body["result"] == json{{"answer", 42}, {"list", {1, "x"}}});
    CHECK(body["error"].is_null());
    CHECK(body["redeliveries"] == 0);  // absent: the job was never put back
    CHECK(body["history"] == json::array());

    hash.emplace_back("redeliveries", "2");
    hash.emplace_back("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    CHECK(job(hash)["redeliveries"] == 2);
    CHECK(job(hash)["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");

    // A queued job: absent fields are null; a broken result is null rather than an error.
    const json queued = job({{"id", ID}, {"status", "queued"}, {"created_ms", "1700000000123"},
                                     {"started_ms", ""}, {"result", "\xc1"}, {"error", ""}});
    CHECK(queued["started_at"].is_null());
    CHECK(queued["finished_at"].is_null());
    CHECK(queued["result"].is_null());
    CHECK(queued["error"].is_null());
    CHECK(queued["attempts"].is_null());

    const json failed = job({{"status", "failed"}, {"error", "boom"}});
    CHECK(failed["error"] == "boom");
    // Non-UTF-8 bytes in a string are replaced (U+FFFD), never an error.
    CHECK(json::parse(job_json({{"error", "bad \xff byte"}}))["error"] == "bad \xef\xbf\xbd byte");
}

namespace {
std::string pack(const json& value) {
    const std::vector<std::uint8_t> bytes = json::to_msgpack(value);
    return std::string(bytes.begin(), bytes.end());
}
}  // namespace

TEST_CASE("attempt history entries -> JSON") {
    // Bytes as Python's msgpack packs [2, "w-1", 1700000000200, 1700000000300, "failed", "boom"]
    // (uint64 times), i.e. what any encoder may write.
    static constexpr char PYTHON_PACKED[] =
        "\x96\x02\xa3w-1\xcf\x00\x00\x01\x8b\xcf\xe5\x68\xc8\xcf\x00\x00\x01\x8b\xcf\xe5\x69\x2c"
        "\xa6" "failed\xa4" "boom";
    const auto entry = history_entry(std::string_view(PYTHON_PACKED, sizeof PYTHON_PACKED - 1));
    REQUIRE(entry);
    CHECK(*entry == json{{"attempt", 2},
                         {"worker", "w-1"},
                         {"started_at", "2023-11-14T22:13:20.200Z"},
                         {"finished_at", "2023-11-14T22:13:20.300Z"},
                         {"outcome", "failed"},
                         {"error", "boom"}});

    // Empty error -> null; a 0 time (never ended) -> null; trailing extra elements are ignored.
    const auto lost = history_entry(pack({1, "w-2", 1700000000123, 0, "lost", "", "extra"}));
    REQUIRE(lost);
    CHECK((*lost)["error"].is_null());
    CHECK((*lost)["finished_at"].is_null());
    CHECK((*lost)["started_at"] == "2023-11-14T22:13:20.123Z");
    CHECK((*lost)["outcome"] == "lost");
    // A whole float time (as a Lua encoder might write) and a nil error are accepted.
    const auto lua = history_entry(pack({3, "w", 1700000000200.0, 1700000000300.0, "succeeded", nullptr}));
    REQUIRE(lua);
    CHECK((*lua)["finished_at"] == "2023-11-14T22:13:20.300Z");
    CHECK((*lua)["error"].is_null());

    // Broken entries are skipped, never fatal.
    for (const std::string& bad :
         {std::string(), std::string("\xc1"), std::string("\x96\x01"), pack(json::object()),
          pack({1, "w", 1, 2, "failed"}), pack({-1, "w", 1, 2, "failed", ""}),
          pack({"1", "w", 1, 2, "failed", ""}), pack({1, 7, 1, 2, "failed", ""}),
          pack({1, "w", "t", 2, "failed", ""}), pack({1, "w", 1, 2, nullptr, ""}),
          pack({1, "w", 1, 2, "failed", 5}), pack(json::array())}) {
        CHECK_FALSE(history_entry(bad));
    }
    const json history = json::parse(history_json({pack({1, "a", 1, 2, "failed", "x"}), "\xc1", "",
                                          pack({2, "b", 3, 4, "succeeded", ""})}));
    REQUIRE(history.size() == 2);
    CHECK(history[0]["attempt"] == 1);
    CHECK(history[1]["attempt"] == 2);
    CHECK(history[1]["outcome"] == "succeeded");

    // job_to_json carries the decoded history, in order.
    const json body = job({{"id", ID}, {"status", "failed"}, {"redeliveries", "1"}},
                                  {pack({1, "a", 1, 2, "lost", "worker lost"}), "junk",
                                   pack({2, "b", 3, 4, "failed", "boom"})});
    CHECK(body["redeliveries"] == 1);
    REQUIRE(body["history"].size() == 2);
    CHECK(body["history"][0]["error"] == "worker lost");
    CHECK(body["history"][1]["error"] == "boom");
    CHECK(job({{"redeliveries", "x"}})["redeliveries"] == 0);
}

TEST_CASE("event entry -> SSE text") {
    EventEntry started{"2-1", {{"event", "started"}, {"seq", "2"}, {"ts", "1700000000200"},
                              {"attempt", "1"}, {"worker", "w-1"}}};
    const std::string text = format_sse_event(ID, started);
    const std::string prefix = "id: 2\nevent: started\ndata: ";
    REQUIRE(text.rfind(prefix, 0) == 0);
    REQUIRE(text.size() > prefix.size() + 2);
    CHECK(text.substr(text.size() - 2) == "\n\n");
    const std::string data_line = text.substr(prefix.size(), text.size() - prefix.size() - 2);
    CHECK(data_line.find('\n') == std::string::npos);
    const json data = json::parse(data_line);
    CHECK(data == json{{"job_id", ID}, {"seq", 2}, {"event", "started"},
                       {"time", "2023-11-14T22:13:20.200Z"}, {"attempt", 1}, {"worker", "w-1"}});

    EventEntry progress{"3-1", {{"event", "progress"}, {"seq", "3"}, {"ts", "1700000000300"},
                               {"fraction", "0.25"}, {"message", "line1\nline2"}}};
    const std::string ptext = format_sse_event(ID, progress);
    CHECK(ptext.rfind("id: 3\nevent: progress\ndata: ", 0) == 0);
    CHECK(std::count(ptext.begin(), ptext.end(), '\n') == 4);  // newlines in data are escaped
    const json pdata = json::parse(ptext.substr(ptext.find("data: ") + 6));
    CHECK(pdata["fraction"] == 0.25);
    CHECK(pdata["message"] == "line1\nline2");
    CHECK_FALSE(pdata.contains("attempt"));

    const std::vector<std::uint8_t> packed = json::to_msgpack(json{{"slept_ms", 300}});
    EventEntry done{"9-1", {{"event", "succeeded"}, {"seq", "9"}, {"ts", "1700000000400"},
                           {"result", std::string(packed.begin(), packed.end())}}};
    const json ddata = json::parse(format_sse_event(ID, done).substr(std::string("id: 9\nevent: succeeded\ndata: ").size()));
    CHECK(ddata["result"] == json{{"slept_ms", 300}});

    EventEntry chunk{"4-1", {{"event", "chunk"}, {"seq", "4"}, {"ts", "1"}, {"data", "tok"}}};
    CHECK(format_sse_event(ID, chunk).find(R"("data":"tok")") != std::string::npos);
    EventEntry failed{"5-1", {{"event", "failed"}, {"seq", "5"}, {"ts", "1"}, {"error", "boom"}}};
    CHECK(format_sse_event(ID, failed).find(R"("error":"boom")") != std::string::npos);

    // The seq comes from the entry id when the field is missing.
    EventEntry no_seq{"17-1", {{"event", "queued"}}};
    CHECK(event_seq(no_seq) == 17u);
    CHECK(format_sse_event(ID, no_seq).rfind("id: 17\n", 0) == 0);
}

TEST_CASE("Last-Event-ID and wait parsing") {
    CHECK(parse_unsigned("0") == 0u);
    CHECK(parse_unsigned("42") == 42u);
    CHECK(parse_unsigned(" 7 ") == 7u);
    CHECK_FALSE(parse_unsigned(""));
    CHECK_FALSE(parse_unsigned("-1"));
    CHECK_FALSE(parse_unsigned("1.5"));
    CHECK_FALSE(parse_unsigned("abc"));
    CHECK_FALSE(parse_unsigned("99999999999999999999999"));

    CHECK(std::get<int>(parse_wait("0")) == 0);
    CHECK(std::get<int>(parse_wait("60")) == 60);
    for (const char* bad : {"61", "-1", "100000", "", "x", "1.5"}) {
        auto r = parse_wait(bad);
        REQUIRE_MESSAGE(std::holds_alternative<ApiError>(r), bad);
        CHECK(std::get<ApiError>(r).status == 422);
        CHECK(std::get<ApiError>(r).code == "invalid_request");
    }
}

TEST_CASE("dead-letter paging") {
    auto page_of = [](std::map<std::string, std::string> query) {
        auto parsed = parse_page(query);
        REQUIRE(std::holds_alternative<Page>(parsed));
        return std::get<Page>(parsed);
    };
    CHECK(page_of({}).limit == 100);
    CHECK(page_of({}).offset == 0);
    CHECK(page_of({{"limit", "1"}, {"offset", "0"}}).limit == 1);
    CHECK(page_of({{"limit", "1000"}}).limit == 1000);
    CHECK(page_of({{"offset", "9007199254740992"}}).offset == DEAD_OFFSET_MAX);
    for (auto [name, value] : std::vector<std::pair<std::string, std::string>>{
             {"limit", "0"}, {"limit", "1001"}, {"limit", "-1"}, {"limit", ""}, {"limit", "ten"},
             {"limit", "1e3"}, {"limit", "99999999999999999999999"}, {"offset", "-1"},
             {"offset", "x"}, {"offset", "9007199254740993"}, {"offset", "1.5"}}) {
        auto parsed = parse_page({{name, value}});
        REQUIRE_MESSAGE(std::holds_alternative<ApiError>(parsed), name << "=" << value);
        const ApiError& e = std::get<ApiError>(parsed);
        CHECK(e.status == 422);
        CHECK(e.code == "invalid_request");
        CHECK(e.message.find(name) == 0);
    }
}

TEST_CASE("dead-letter page body: bounded in bytes, next_offset wherever dead jobs remain") {
    const std::string job = R"({"id":")" + std::string(100, 'j') + R"("})";  // 109 bytes
    const Page page{10, 20};
    // Room for the opening, the closing fields (128 bytes kept) and two jobs with their comma.
    const std::size_t bound = std::string(R"({"jobs":[)").size() + 128 + 2 * job.size() + 1;
    DeadPageBody two(page, bound);
    CHECK(two.add(job));
    two.skip();  // an expired job: listed nowhere, but the next page starts after it
    CHECK(two.add(job));
    CHECK_FALSE(two.add(job));
    const std::string body = two.finish(1000);
    CHECK(body.size() <= bound);
    CHECK(json::parse(body) == json::parse(R"({"jobs":[)" + job + "," + job +
                                           R"(],"total":1000,"limit":10,"offset":20,"next_offset":23})"));

    // The first job goes in whatever its size: a client paging on always moves forward.
    DeadPageBody tiny(page, 1);
    CHECK(tiny.add(job));
    CHECK_FALSE(tiny.add(job));
    CHECK(json::parse(tiny.finish(22))["next_offset"] == 21);

    // The last page, and a page past the end, say no next_offset.
    DeadPageBody last(page);
    CHECK(last.add(job));
    CHECK(json::parse(last.finish(21)) == json::parse(R"({"jobs":[)" + job + R"(],"total":21,"limit":10,"offset":20})"));
    CHECK(json::parse(DeadPageBody(page).finish(5)) == json::parse(R"({"jobs":[],"total":5,"limit":10,"offset":20})"));
}

TEST_CASE("request target splitting") {
    const Target t = split_target("/v1/jobs/x/result?wait=5&last_event_id=%32&a+b=c+d&flag");
    CHECK(t.path == "/v1/jobs/x/result");
    CHECK(t.query.at("wait") == "5");
    CHECK(t.query.at("last_event_id") == "2");
    CHECK(t.query.at("a b") == "c d");
    CHECK(t.query.at("flag").empty());
    CHECK(split_target("/healthz").query.empty());
    CHECK(split_target("/x?bad=%zz%").query.at("bad") == "%zz%");
}

TEST_CASE("route patterns") {
    std::string id;
    CHECK(match_path("/healthz", "/healthz", id));
    CHECK(match_path("/v1/jobs/{id}/events", "/v1/jobs/abc/events", id));
    CHECK(id == "abc");
    for (const char* path : {"/v1/jobs//events", "/v1/jobs/abc", "/v1/jobs/a/events/x", "/v1/jobs/a/b"})
        CHECK_FALSE_MESSAGE(match_path("/v1/jobs/{id}/events", path, id), path);
    CHECK_FALSE(match_path("/healthz", "/healthz/", id));
}

TEST_CASE("HTTP answers from broker REPLYs") {
    const std::string SECRET = "secret";
    const std::int64_t EXPIRES = 2000000000;
    const std::string token = "?token=" + read_token(SECRET, ID, EXPIRES);
    Submit submit;
    submit.job_id = ID;
    submit.type = "echo";

    Reply accepted;
    accepted.status = 202;
    HttpResult r = submit_result(submit, accepted, SECRET, EXPIRES);
    CHECK(r.status == 202);
    REQUIRE(r.headers.size() == 1);
    CHECK(r.headers[0] == std::pair<std::string, std::string>{"Location", "/v1/jobs/" + ID});
    const json body = json::parse(r.body);
    CHECK(body["id"] == ID);
    CHECK(body["type"] == "echo");
    CHECK(body["status"] == "queued");
    CHECK(body["links"] == json{{"self", "/v1/jobs/" + ID},
                                {"events", "/v1/jobs/" + ID + "/events" + token},
                                {"result", "/v1/jobs/" + ID + "/result" + token}});

    auto error_of = [](const HttpResult& result) {
        const json b = json::parse(result.body);
        CHECK(b.size() == 1);
        CHECK_FALSE(b["error"]["message"].get<std::string>().empty());
        return b["error"]["code"].get<std::string>();
    };
    Reply refused;
    refused.status = 422;
    refused.code = "unknown_job_type";
    refused.message = "no worker serves echo";
    r = submit_result(submit, refused, SECRET, EXPIRES);
    CHECK(r.status == 422);
    CHECK(error_of(r) == "unknown_job_type");
    CHECK(r.headers.empty());

    for (const char* code : {"queue_full", "tenant_queue_full"}) {
        Reply full;
        full.status = 429;
        full.code = code;
        r = submit_result(submit, full, SECRET, EXPIRES);
        CHECK(r.status == 429);
        CHECK(error_of(r) == code);
        REQUIRE(r.headers.size() == 1);
        CHECK(r.headers[0] == std::pair<std::string, std::string>{"Retry-After", "1"});
    }

    Reply down;
    down.status = 503;
    down.code = "redis_unavailable";
    CHECK(submit_result(submit, down, SECRET, EXPIRES).status == 503);
    CHECK(error_of(submit_result(submit, down, SECRET, EXPIRES)) == "redis_unavailable");

    Reply weird;
    weird.status = 7;
    CHECK(submit_result(submit, weird, SECRET, EXPIRES).status == 502);

    // No answer in time: the job may be stored. The answer says where, and how to retry safely.
    Reply unanswered;
    unanswered.status = 503;
    unanswered.code = "outcome_unknown";
    r = submit_result(submit, unanswered, SECRET, EXPIRES);
    CHECK(error_of(r) == "outcome_unknown");
    CHECK(r.headers == std::vector<std::pair<std::string, std::string>>{{"Retry-After", "1"}});
    std::string message = json::parse(r.body)["error"]["message"];
    CHECK(message.find("/v1/jobs/" + ID) != std::string::npos);
    CHECK(message.find("submit with an Idempotency-Key") != std::string::npos);
    Submit keyed = submit;
    keyed.idempotency_key = "k-1";
    message = json::parse(submit_result(keyed, unanswered, SECRET, EXPIRES).body)["error"]["message"];
    CHECK(message.find("retry with the same Idempotency-Key") != std::string::npos);
    // Never sent: nothing can have been stored.
    Reply never_sent = unanswered;
    never_sent.code = "broker_unavailable";
    CHECK(error_of(submit_result(submit, never_sent, SECRET, EXPIRES)) == "broker_unavailable");

    // An idempotent replay: the broker names the original job; still a 202 with its links.
    Reply replay;
    replay.status = 200;
    replay.job_id = "11111111-2222-4333-8444-555555555555";
    replay.state = "succeeded";
    r = submit_result(submit, replay, SECRET, EXPIRES);
    CHECK(r.status == 202);
    const std::string original = "/v1/jobs/" + replay.job_id;
    CHECK(r.headers == std::vector<std::pair<std::string, std::string>>{
                           {"Location", original}, {"Idempotent-Replayed", "true"}});
    const json replayed = json::parse(r.body);
    CHECK(replayed["id"] == replay.job_id);
    CHECK(replayed["type"] == "echo");
    CHECK(replayed["status"] == "succeeded");
    CHECK(replayed["links"]["self"] == original);
    std::set<std::string> fresh_keys, replay_keys;
    for (const auto& item : body.items()) fresh_keys.insert(item.key());
    for (const auto& item : replayed.items()) replay_keys.insert(item.key());
    CHECK(fresh_keys == replay_keys);
    replay.state.clear();
    CHECK(json::parse(submit_result(submit, replay, SECRET, EXPIRES).body)["status"] == "queued");
    Reply conflict;
    conflict.status = 409;
    conflict.code = "idempotency_conflict";
    r = submit_result(submit, conflict, SECRET, EXPIRES);
    CHECK(r.status == 409);
    CHECK(error_of(r) == "idempotency_conflict");

    Reply requeued;
    requeued.status = 200;
    requeued.state = "queued";
    r = retry_result(ID, requeued);
    CHECK(r.status == 200);
    CHECK(json::parse(r.body) == json{{"id", ID}, {"status", "queued"}});
    for (auto [status, code] : std::vector<std::pair<int, std::string>>{
             {404, "job_not_found"}, {409, "job_not_dead"}, {503, "broker_unavailable"}}) {
        Reply refused_retry;
        refused_retry.status = static_cast<std::uint32_t>(status);
        refused_retry.code = code;
        r = retry_result(ID, refused_retry);
        CHECK(r.status == status);
        CHECK(error_of(r) == code);
    }

    Reply canceled;
    canceled.status = 200;
    r = cancel_result(ID, canceled);
    CHECK(r.status == 200);
    CHECK(json::parse(r.body) == json{{"id", ID}, {"status", "canceled"}});
    Reply finished;
    finished.status = 409;
    finished.code = "job_finished";
    CHECK(cancel_result(ID, finished).status == 409);
    CHECK(error_of(cancel_result(ID, finished)) == "job_finished");
    Reply missing;
    missing.status = 404;
    missing.code = "job_not_found";
    CHECK(error_of(cancel_result(ID, missing)) == "job_not_found");
}

TEST_CASE("error body shape") {
    const json b = json::parse(error_body("not_found", "no such endpoint"));
    CHECK(b == json{{"error", {{"code", "not_found"}, {"message", "no such endpoint"}}}});
    const HttpResult r = error_result({413, "body_too_large", "too big"});
    CHECK(r.status == 413);
    CHECK(json::parse(r.body)["error"]["code"] == "body_too_large");
}

TEST_CASE("notices from the sluice:notify channel") {
    // As the Lua scripts pack them: strings, the seq and times already formatted.
    const auto full = parse_notice(pack({ID, "3-1", "event", "succeeded", "result", "\x81\xa1k\x01", "seq", "3", "ts", "1700000000400"}));
    REQUIRE(full);
    CHECK(full->job_id == ID);
    REQUIRE(full->event);
    CHECK(full->event->id == "3-1");
    CHECK(event_seq(*full->event) == 3u);
    CHECK(*event_field(*full->event, "result") == "\x81\xa1k\x01");
    CHECK(format_sse_event(ID, *full->event).find(R"("result":{"k":1})") != std::string::npos);
    // An event too big for the notice: the id alone. Integers are accepted as their digits.
    const auto bare = parse_notice(pack({ID}));
    REQUIRE(bare);
    CHECK_FALSE(bare->event);
    const auto numeric = parse_notice(pack({ID, "2-1", "seq", 2}));
    REQUIRE(numeric);
    CHECK(*event_field(*numeric->event, "seq") == "2");
    // A field without its value: the id still wakes the job's streams, which read the event back.
    const auto odd = parse_notice(pack({ID, "2-1", "event"}));
    REQUIRE(odd);
    CHECK_FALSE(odd->event);
    for (const std::string& bad : {std::string(), std::string(ID), pack(json::array()), pack(json::object()),
                                   pack({ID, nullptr}), pack({ID, {"nested"}}), pack({-1}), std::string("\x92\xa1x")})
        CHECK_FALSE(parse_notice(bad));
}

TEST_CASE("API keys: shape, id, hash; only the right key's hash matches") {
    const NewKey made = make_key();
    CHECK(made.key.size() == 3 + 16 + 1 + 64);
    CHECK(key_id_of(made.key) == made.id);
    CHECK(made.hash == key_hash(made.key));
    CHECK(same_secret(made.hash, key_hash(made.key)));
    CHECK_FALSE(same_secret(made.hash, key_hash(made.key + "x")));
    CHECK(make_key().id != made.id);
    for (std::string bad : {std::string(""), std::string("sk_"), made.key.substr(0, made.key.size() - 1), made.key + "0",
                            "pk" + made.key.substr(2), "sk_" + made.id + "-" + made.key.substr(20),
                            "sk_" + std::string(16, 'G') + made.key.substr(19)})
        CHECK_FALSE(key_id_of(bad));
}

TEST_CASE("read tokens open their own job until they expire, and nothing else") {
    const std::string token = read_token("secret", ID, 1000);
    CHECK(token_opens("secret", token, ID, 999));
    CHECK(token_opens("secret", token, ID, 1000));
    CHECK_FALSE(token_opens("secret", token, ID, 1001));                      // expired
    CHECK_FALSE(token_opens("other secret", token, ID, 999));                // another server's
    CHECK_FALSE(token_opens("secret", token, "another job", 999));            // another job
    CHECK_FALSE(token_opens("secret", "2000" + token.substr(4), ID, 999));    // expiry moved
    for (std::string bad : {std::string(""), std::string("."), std::string("1000"), std::string("1000."),
                            std::string("x.") + token.substr(5), "99999999999999999999" + token.substr(4)})
        CHECK_FALSE(token_opens("secret", bad, ID, 0));
}
