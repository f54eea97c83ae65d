// Webhook rules shared by the api and the broker (see webhooks.hpp).
#include "webhooks.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace sluice::webhooks {
namespace {

using Address = std::array<std::uint8_t, 16>;

// An IPv4 or IPv6 literal as 16 bytes (IPv4 mapped into ::ffff:0:0/96); only the forms
// inet_pton takes (dotted quads, not "127.1" or "0x7f.1").
std::optional<Address> parse_address(const std::string& text) {
    Address out{};
    in_addr v4{};
    if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
        out[10] = out[11] = 0xff;
        std::memcpy(out.data() + 12, &v4, 4);
        return out;
    }
    in6_addr v6{};
    if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
        std::memcpy(out.data(), &v6, 16);
        return out;
    }
    return std::nullopt;
}

bool in_net(const Address& address, const Net& net) {
    const int whole = net.prefix / 8, rest = net.prefix % 8;
    if (!std::equal(address.begin(), address.begin() + whole, net.address.begin())) return false;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (address[whole] & mask) == (net.address[whole] & mask);
}

std::optional<Net> parse_net(const std::string& text) {
    const auto slash = text.find('/');
    const auto address = parse_address(text.substr(0, slash));
    if (!address) return std::nullopt;
    const bool v4 = text.find(':') == std::string::npos;
    const int max = v4 ? 32 : 128;
    int prefix = max;
    if (slash != std::string::npos) {
        const char* first = text.data() + slash + 1;
        const char* last = text.data() + text.size();
        auto [end, ec] = std::from_chars(first, last, prefix);
        if (ec != std::errc() || end != last || first == last || prefix < 0 || prefix > max) return std::nullopt;
    }
    return Net{*address, v4 ? prefix + 96 : prefix};
}

// Networks that are not the public internet (IANA's special-purpose registries): an address in
// one reaches the operator's own hosts, or nothing. IPv4 networks are written mapped.
const std::vector<Net>& refused_nets() {
    static const std::vector<Net> nets = [] {
        std::vector<Net> out;
        for (const char* text :
             {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
              "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
              "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "::/96", "64:ff9b:1::/48",
              "100::/64", "2001::/32", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10",
              "ff00::/8"})
            out.push_back(*parse_net(text));
        return out;
    }();
    return nets;
}

// NAT64's well-known prefix carries an IPv4 address in its last 4 bytes: that address decides.
Address unwrapped(const Address& address) {
    static const Net NAT64 = *parse_net("64:ff9b::/96");
    if (!in_net(address, NAT64)) return address;
    Address mapped{};
    mapped[10] = mapped[11] = 0xff;
    std::copy(address.begin() + 12, address.end(), mapped.begin() + 12);
    return mapped;
}

bool dns_name(std::string_view host) {
    if (host.empty() || host.size() > 253) return false;
    std::size_t label = 0;
    for (char c : host) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
        } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') {
            if (++label > 63) return false;
        } else {
            return false;
        }
    }
    // A last label of digits (or 0x...) is no top-level domain: it is a number the resolver would
    // read as an address in a form inet_pton refuses ("127.1", "2130706433", "0x7f.1").
    std::string_view last = host.substr(host.find_last_of('.') == std::string_view::npos ? 0 : host.find_last_of('.') + 1);
    if (last.empty()) last = host.substr(0, host.size() - 1);  // a trailing dot
    const bool numeric = !last.empty() && std::all_of(last.begin(), last.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
    });
    const bool hex = last.size() > 1 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X');
    return !numeric && !hex;
}

ParsedUrl fail(std::string error) { return ParsedUrl{std::nullopt, std::move(error)}; }

}  // namespace

bool known_event(std::string_view name) { return std::find(EVENTS.begin(), EVENTS.end(), name) != EVENTS.end(); }

std::optional<std::string> events_problem(std::string_view url, const std::vector<std::string>& events) {
    if (url.empty()) {
        if (events.empty()) return std::nullopt;
        return "webhook_events must be empty without a webhook_url";
    }
    if (events.empty() || events.size() > EVENTS.size()) return "webhook_events must name 1 to 6 events";
    for (std::size_t i = 0; i < events.size(); ++i) {
        if (!known_event(events[i])) return "webhook_events holds an unknown event";
        if (std::find(events.begin(), events.begin() + static_cast<std::ptrdiff_t>(i), events[i]) !=
            events.begin() + static_cast<std::ptrdiff_t>(i))
            return "webhook_events names an event twice";
    }
    return std::nullopt;
}

std::optional<std::vector<Net>> parse_nets(const std::vector<std::string>& items, std::string& bad) {
    std::vector<Net> out;
    for (const auto& item : items) {
        auto net = parse_net(item);
        if (!net) {
            bad = item;
            return std::nullopt;
        }
        out.push_back(*net);
    }
    return out;
}

bool in_nets(const Address& address, const std::vector<Net>& nets) {
    return std::any_of(nets.begin(), nets.end(), [&](const Net& net) { return in_net(address, net); });
}

ParsedUrl parse_url(std::string_view url) {
    if (url.size() > MAX_URL_BYTES) return fail("is longer than " + std::to_string(MAX_URL_BYTES) + " bytes");
    for (char c : url)
        if (c < 0x21 || c > 0x7e) return fail("must be visible ASCII (percent-encode the rest; hosts in punycode)");
    std::string lower(url);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    std::size_t start = 0;
    if (lower.rfind("https://", 0) == 0) start = 8;
    else if (lower.rfind("http://", 0) == 0) start = 7;
    else return fail("must start with http:// or https://");
    const std::size_t end = std::min(lower.find_first_of("/?#", start), lower.size());
    const std::string authority = lower.substr(start, end - start);
    if (authority.find('@') != std::string::npos) return fail("must not hold a user name or password");
    std::string host = authority, port;
    bool has_port = false;
    if (!authority.empty() && authority[0] == '[') {
        const auto close = authority.find(']');
        if (close == std::string::npos) return fail("has an IPv6 host without its ']'");
        host = authority.substr(1, close - 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return fail("has something after its IPv6 host");
            has_port = true;
            port = authority.substr(close + 2);
        }
    } else if (const auto colon = authority.find(':'); colon != std::string::npos) {
        host = authority.substr(0, colon);
        has_port = true;
        port = authority.substr(colon + 1);
    }
    if (has_port) {
        unsigned value = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (port.empty() || ec != std::errc() || p != port.data() + port.size() || value < 1 || value > 65535)
            return fail("has a port that is not 1..65535");
    }
    Url out;
    out.host = host;
    if (auto address = parse_address(host)) {
        out.literal = true;
        out.address = *address;
    } else if (authority.empty() || authority[0] == '[' || !dns_name(host)) {
        return fail("has no valid host (a DNS name or an IP address)");
    }
    return ParsedUrl{std::move(out), ""};
}

bool refused_address(const Address& address, const std::vector<Net>& allowed) {
    const Address checked = unwrapped(address);
    if (in_nets(checked, allowed) || in_nets(address, allowed)) return false;
    return in_nets(checked, refused_nets());
}

}  // namespace sluice::webhooks
