// A webhook as a client writes it, {"url", "events"?}, in a submit's options.webhook and in
// POST /v1/webhooks, and the secrets that sign deliveries (README.md, "Webhooks"). Pure: no
// Redis, no sockets. Thread-safe.
#pragma once

#include "request.hpp"
#include "webhooks.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace sluice::api {

struct WebhookSpec {
    std::string url;
    std::vector<std::string> events;  // webhooks::DEFAULT_EVENTS when the client named none
};

// Reads `value`, named `field` in messages ("options.webhook"). Errors (422): invalid_request
// (not an object, unknown member), invalid_webhook_url, webhook_target_refused (an IP literal in
// a refused network that `allowed` does not list), invalid_webhook_events.
Checked<WebhookSpec> parse_webhook(const json& value, std::string_view field, const std::vector<webhooks::Net>& allowed);

// A fresh signing secret as the Standard Webhooks spec writes one: "whsec_" and the base64 of
// 32 random bytes (the spec asks for 24 to 64).
std::string make_webhook_secret();

// A fresh endpoint id: "wh_" and 24 hex digits (96 random bits).
std::string make_webhook_id();

// True for an id of make_webhook_id()'s shape.
bool is_webhook_id(std::string_view id);

}  // namespace sluice::api
