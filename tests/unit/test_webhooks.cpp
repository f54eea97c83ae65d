// Webhook rules: URL parsing, refused target addresses and the allow-list (common/webhooks.hpp),
// a client's webhook object and secrets (api/webhook_options.hpp).
#include "webhook_options.hpp"
#include "webhooks.hpp"

#include <doctest/doctest.h>

#include <string>
#include <variant>

using namespace sluice;
using namespace sluice::webhooks;
using json = nlohmann::json;

namespace {

std::vector<Net> nets(std::vector<std::string> items) {
    std::string bad;
    auto out = parse_nets(items, bad);
    REQUIRE(out.has_value());
    return *out;
}

bool refused_url(const std::string& url, const std::vector<Net>& allowed = {}) {
    const ParsedUrl parsed = parse_url(url);
    REQUIRE(parsed.url);
    REQUIRE(parsed.url->literal);
    return refused_address(parsed.url->address, allowed);
}

std::string code_of(const json& value, const std::vector<Net>& allowed = {}) {
    auto parsed = api::parse_webhook(value, "options.webhook", allowed);
    if (auto* error = std::get_if<api::ApiError>(&parsed)) return error->code;
    return "";
}

}  // namespace

TEST_CASE("a URL is http(s), without userinfo, with a host and a port in range, visible ASCII, bounded") {
    for (const char* good : {"https://hooks.example.com/sluice?x=1", "HTTP://example.com", "http://a.example:8080/",
                             "https://[2606:4700::1111]:443/x", "http://8.8.8.8/hook", "https://xn--bcher-kva.example/"}) {
        CAPTURE(good);
        CHECK(parse_url(good).url.has_value());
    }
    for (const char* bad : {"ftp://example.com/", "file:///etc/passwd", "gopher://x", "//example.com", "example.com",
                            "http://user:pw@example.com/", "http://user@example.com", "http://example.com:0/",
                            "http://example.com:65536/", "http://example.com:x/", "http:///path", "http://",
                            "http://exa mple.com/", "http://example.com/\x01", "http://[::1/", "http://ex!ample.com/",
                            "http://127.1/", "http://2130706433/", "http://0x7f.1/", "http://bücher.example/"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_url(bad).url.has_value());
    }
    const std::string at_limit = "https://example.com/" + std::string(MAX_URL_BYTES - 20, 'a');
    CHECK(parse_url(at_limit).url.has_value());
    CHECK_FALSE(parse_url(at_limit + "a").url.has_value());
}

TEST_CASE("loopback, private, link-local and other non-public addresses are refused unless allowed") {
    for (const char* url : {"http://127.0.0.1/", "http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.1.1/",
                            "http://169.254.169.254/latest/meta-data", "http://100.64.0.1/", "http://0.0.0.0/",
                            "http://224.0.0.1/", "http://255.255.255.255/", "http://[::1]/", "http://[::]/",
                            "http://[fe80::1]/", "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/",
                            "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::a00:1]/", "http://[ff02::1]/"}) {
        CAPTURE(url);
        CHECK(refused_url(url));
    }
    for (const char* url : {"http://8.8.8.8/", "http://[2606:4700::1111]/", "http://[64:ff9b::808:808]/"}) {
        CAPTURE(url);
        CHECK_FALSE(refused_url(url));
    }
    const auto loopback = nets({"127.0.0.0/8", "fd00::/8"});
    CHECK_FALSE(refused_url("http://127.0.0.1/", loopback));
    CHECK_FALSE(refused_url("http://[::ffff:127.0.0.2]/", loopback));
    CHECK_FALSE(refused_url("http://[fd12::1]/", loopback));
    CHECK(refused_url("http://10.0.0.1/", loopback));
    CHECK(refused_url("http://[::1]/", loopback));
    std::string bad;
    CHECK_FALSE(parse_nets({"10.0.0.0/33"}, bad).has_value());
    CHECK(bad == "10.0.0.0/33");
    CHECK_FALSE(parse_nets({"localhost"}, bad).has_value());
    CHECK_FALSE(parse_nets({"10.0.0.0/"}, bad).has_value());
}

TEST_CASE("events: known lifecycle ones, each once, none without a url") {
    CHECK_FALSE(events_problem("", {}));
    CHECK(events_problem("", {"succeeded"}));
    CHECK(events_problem("http://x.example", {}));
    CHECK_FALSE(events_problem("http://x.example", {"queued", "started", "retrying", "succeeded", "failed", "canceled"}));
    CHECK(events_problem("http://x.example", {"succeeded", "succeeded"}));
    CHECK(events_problem("http://x.example", {"chunk"}));
    CHECK(events_problem("http://x.example", {"progress"}));
}

TEST_CASE("a client's webhook: stable codes for each kind of wrong") {
    CHECK(code_of(json{{"url", "https://hooks.example.com/x"}}).empty());
    auto parsed = api::parse_webhook(json{{"url", "https://hooks.example.com/x"}}, "w", {});
    CHECK(std::get<api::WebhookSpec>(parsed).events == std::vector<std::string>{"succeeded", "failed", "canceled"});
    CHECK(code_of(json::array()) == "invalid_request");
    CHECK(code_of(json{{"url", "https://x.example"}, {"secret", "x"}}) == "invalid_request");
    CHECK(code_of(json{{"events", {"succeeded"}}}) == "invalid_webhook_url");
    CHECK(code_of(json{{"url", 7}}) == "invalid_webhook_url");
    CHECK(code_of(json{{"url", "javascript:alert(1)"}}) == "invalid_webhook_url");
    CHECK(code_of(json{{"url", "https://" + std::string(3000, 'a') + ".example"}}) == "invalid_webhook_url");
    CHECK(code_of(json{{"url", "http://127.0.0.1:9/"}}) == "webhook_target_refused");
    CHECK(code_of(json{{"url", "http://127.0.0.1:9/"}}, nets({"127.0.0.0/8"})).empty());
    CHECK(code_of(json{{"url", "https://x.example"}, {"events", "succeeded"}}) == "invalid_webhook_events");
    CHECK(code_of(json{{"url", "https://x.example"}, {"events", json::array()}}) == "invalid_webhook_events");
    CHECK(code_of(json{{"url", "https://x.example"}, {"events", {"succeeded", 1}}}) == "invalid_webhook_events");
    CHECK(code_of(json{{"url", "https://x.example"}, {"events", {"done"}}}) == "invalid_webhook_events");
    CHECK(code_of(json{{"url", "https://x.example"}, {"events", json(std::vector<std::string>(100000, "queued"))}}) ==
          "invalid_webhook_events");
}

TEST_CASE("secrets and endpoint ids have their documented shapes") {
    const std::string secret = api::make_webhook_secret();
    CHECK(secret.rfind("whsec_", 0) == 0);
    CHECK(secret.size() == 6 + 44);  // base64 of 32 bytes
    CHECK(secret != api::make_webhook_secret());
    const std::string id = api::make_webhook_id();
    CHECK(api::is_webhook_id(id));
    CHECK_FALSE(api::is_webhook_id("wh_0123"));
    CHECK_FALSE(api::is_webhook_id("xx_0123456789abcdef01234567"));
    CHECK_FALSE(api::is_webhook_id("wh_0123456789ABCDEF01234567"));
}
