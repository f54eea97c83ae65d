// Parsing a client's webhook and making its secrets (see webhook_options.hpp).
#include "webhook_options.hpp"

#include "credentials.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace sluice::api {
namespace {

constexpr std::size_t SECRET_BYTES = 32;
constexpr std::size_t ID_BYTES = 12;
constexpr std::string_view ID_PREFIX = "wh_";

}  // namespace

Checked<WebhookSpec> parse_webhook(const json& value, std::string_view field, const std::vector<webhooks::Net>& allowed) {
    const std::string name(field);
    if (!value.is_object()) return api_error(errors::INVALID_REQUEST, name + " must be an object {\"url\", \"events\"?}");
    for (const auto& item : value.items())
        if (item.key() != "url" && item.key() != "events")
            return api_error(errors::INVALID_REQUEST, name + "." + item.key() + " is not a webhook member (url, events)");
    WebhookSpec spec;
    const auto url = value.find("url");
    if (url == value.end() || !url->is_string())
        return api_error(errors::INVALID_WEBHOOK_URL, name + ".url must be a string");
    spec.url = url->get<std::string>();
    const webhooks::ParsedUrl parsed = webhooks::parse_url(spec.url);
    if (!parsed.url) return api_error(errors::INVALID_WEBHOOK_URL, name + ".url " + parsed.error);
    if (parsed.url->literal && webhooks::refused_address(parsed.url->address, allowed))
        return api_error(errors::WEBHOOK_TARGET_REFUSED,
                         name + ".url is a loopback, private, link-local or otherwise non-public address, which "
                                "SLUICE_WEBHOOK_ALLOW_NETS does not allow");
    const auto events = value.find("events");
    if (events == value.end()) {
        spec.events.assign(webhooks::DEFAULT_EVENTS.begin(), webhooks::DEFAULT_EVENTS.end());
        return spec;
    }
    const std::string rule = name + ".events must be a list of 1 to " + std::to_string(webhooks::EVENTS.size()) +
                             " different events of: queued, started, retrying, succeeded, failed, canceled";
    if (!events->is_array()) return api_error(errors::INVALID_WEBHOOK_EVENTS, rule);
    for (const auto& event : *events) {
        if (!event.is_string()) return api_error(errors::INVALID_WEBHOOK_EVENTS, rule);
        spec.events.push_back(event.get<std::string>());
        if (spec.events.size() > webhooks::EVENTS.size()) break;
    }
    if (webhooks::events_problem(spec.url, spec.events)) return api_error(errors::INVALID_WEBHOOK_EVENTS, rule);
    return spec;
}

std::string make_webhook_secret() {
    unsigned char raw[SECRET_BYTES];
    if (RAND_bytes(raw, static_cast<int>(SECRET_BYTES)) != 1) throw std::runtime_error("no random bytes from the system");
    unsigned char text[4 * ((SECRET_BYTES + 2) / 3) + 1];
    const int n = EVP_EncodeBlock(text, raw, static_cast<int>(SECRET_BYTES));
    return "whsec_" + std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(n));
}

std::string make_webhook_id() { return std::string(ID_PREFIX) + random_hex(ID_BYTES); }

bool is_webhook_id(std::string_view id) {
    if (!id.starts_with(ID_PREFIX) || id.size() != ID_PREFIX.size() + 2 * ID_BYTES) return false;
    return std::all_of(id.begin() + static_cast<std::ptrdiff_t>(ID_PREFIX.size()), id.end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'); });
}

}  // namespace sluice::api
