// What Sluice accepts as a webhook (README.md, "Webhooks"): the lifecycle events one may ask
// for, the bounds of its URL, and which target addresses are refused so that a webhook cannot
// reach into the operator's own network (SSRF). The api checks a URL in full at submit (and
// for a tenant endpoint); the broker re-checks the cheap rules of a SUBMIT, whoever sent it; the
// deliverer (python_workers/sluice/webhooks.py) checks every resolved address again, with the
// same list of refused networks. Thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::webhooks {

// The job events a webhook may ask for; progress and chunk are too many to post one by one.
inline constexpr std::array<std::string_view, 6> EVENTS{"queued", "started", "retrying", "succeeded", "failed",
                                                        "canceled"};
// What a webhook gets when it names none: the events that end a job.
inline constexpr std::array<std::string_view, 3> DEFAULT_EVENTS{"succeeded", "failed", "canceled"};
// A URL's length in bytes: 2 KiB holds any real callback URL with a query string and keeps the
// job hash, each stream entry and each attempt record small.
inline constexpr std::size_t MAX_URL_BYTES = 2048;
// Default endpoints one tenant may register (POST /v1/webhooks); each lifecycle event of each
// of its jobs is one delivery per endpoint that wants it.
inline constexpr std::size_t MAX_ENDPOINTS = 10;

// True for a name in EVENTS.
bool known_event(std::string_view name);

// The wanted events of a webhook as a SUBMIT carries them: each known, none twice, at most
// EVENTS.size(); empty only without a url. Returns the problem, or nullopt when they are fine.
std::optional<std::string> events_problem(std::string_view url, const std::vector<std::string>& events);

// An IPv4 or IPv6 network, "10.0.0.0/8" or "fd00::/8".
struct Net {
    std::array<std::uint8_t, 16> address{};  // IPv4 as its IPv4-mapped IPv6 form
    int prefix = 0;                          // in bits of the 128
};

// Parses a comma-separated CIDR list (SLUICE_WEBHOOK_ALLOW_NETS); nullopt and `bad` set to the
// first item that is not one.
std::optional<std::vector<Net>> parse_nets(const std::vector<std::string>& items, std::string& bad);

// True when `address` (IPv4 mapped) is in one of `nets`.
bool in_nets(const std::array<std::uint8_t, 16>& address, const std::vector<Net>& nets);

// A URL split as the checks need it.
struct Url {
    std::string host;    // without brackets for an IPv6 literal, lowercase
    bool literal = false;  // host is an IP address
    std::array<std::uint8_t, 16> address{};  // when literal (IPv4 mapped)
};

// Parses `url`: http or https, no userinfo, a host of DNS letters or an IP literal, an optional
// port 1..65535, visible ASCII only, at most MAX_URL_BYTES. Returns the problem as `error`.
struct ParsedUrl {
    std::optional<Url> url;
    std::string error;
};
ParsedUrl parse_url(std::string_view url);

// True when `address` (IPv4 mapped) is in a network that is not publicly routable (loopback,
// private, link-local, carrier-grade NAT, multicast, documentation, reserved) and in none of
// `allowed`.
bool refused_address(const std::array<std::uint8_t, 16>& address, const std::vector<Net>& allowed);

}  // namespace sluice::webhooks
