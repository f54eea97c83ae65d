// Reading sentinels' answers and the sentinel list (see sentinel.hpp).
#include "sentinel.hpp"

#include "env.hpp"
#include "log.hpp"

#include <charconv>

namespace sluice::sentinel {
namespace {

bool valid_host(std::string_view host) {
    if (host.empty() || host.size() > MAX_HOST) return false;
    for (char c : host)
        if (c <= ' ' || c > '~' || c == ',' || c == '/' || c == '@') return false;
    return true;
}

std::optional<int> parse_port(std::string_view text) {
    int port = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port < 1 || port > 65535)
        return std::nullopt;
    return port;
}

std::string_view text_of(const redisReply* r) {
    return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
               ? std::string_view(r->str, r->len)
               : std::string_view();
}

}  // namespace

std::optional<Address> parse_address(std::string_view text) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string_view host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    else if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs its brackets
    const std::optional<int> port = parse_port(text.substr(colon + 1));
    if (!valid_host(host) || !port) return std::nullopt;
    return Address{std::string(host), *port};
}

std::optional<std::vector<Address>> parse_list(std::string_view text, std::string& bad) {
    std::vector<Address> sentinels;
    while (!text.empty()) {
        const std::size_t comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (!item.empty()) {
            std::optional<Address> address = parse_address(item);
            if (!address || sentinels.size() == MAX_SENTINELS) {
                bad = std::string(item);
                return std::nullopt;
            }
            sentinels.push_back(std::move(*address));
        }
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    if (sentinels.empty()) return std::nullopt;
    return sentinels;
}

std::optional<Config> config_from_env() {
    const std::string list = env_string("SLUICE_REDIS_SENTINELS", "");
    if (list.empty()) return std::nullopt;
    Config config;
    std::string bad;
    auto sentinels = parse_list(list, bad);
    if (!sentinels)
        env_fail("SLUICE_REDIS_SENTINELS",
                 bad.empty() ? "lists no sentinel" : "lists '" + bad + "', not host:port (at most " +
                                                         std::to_string(MAX_SENTINELS) + " of them)");
    config.sentinels = std::move(*sentinels);
    config.master_name = env_string("SLUICE_REDIS_MASTER_NAME", config.master_name);
    if (!valid_host(config.master_name))
        env_fail("SLUICE_REDIS_MASTER_NAME", "must be 1-" + std::to_string(MAX_HOST) + " visible characters");
    return config;
}

std::optional<Address> master_from_reply(const redisReply* reply) {
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) return std::nullopt;
    const std::string_view host = text_of(reply->element[0]);
    const std::optional<int> port = parse_port(text_of(reply->element[1]));
    if (!valid_host(host) || !port) return std::nullopt;
    return Address{std::string(host), *port};
}

bool take_master(const redisReply* reply, const std::string& master_name, std::string_view where, Rotation& rotation,
                 std::string& host, int& port) {
    std::optional<Address> master = master_from_reply(reply);
    if (!master) {
        log::warn("{} does not name master '{}' ({}): asking the next sentinel", where, master_name,
                  reply != nullptr && reply->type == REDIS_REPLY_ERROR ? std::string(reply->str, reply->len)
                  : reply != nullptr && reply->type == REDIS_REPLY_NIL  ? std::string("it watches no such master")
                                                                        : std::string("not an address"));
        return false;
    }
    rotation.answered();
    if (master->host != host || master->port != port)
        log::info("{}: master '{}' is at {}:{}", where, master_name, master->host, master->port);
    host = std::move(master->host);
    port = master->port;
    return true;
}

std::optional<Address> switched_master(std::string_view message, std::string_view master_name) {
    std::string_view words[5];
    for (std::string_view& word : words) {
        const std::size_t space = message.find(' ');
        word = message.substr(0, space);
        message = space == std::string_view::npos ? std::string_view() : message.substr(space + 1);
    }
    if (!message.empty() || words[0] != master_name) return std::nullopt;
    const std::optional<int> port = parse_port(words[4]);
    if (!valid_host(words[3]) || !port) return std::nullopt;
    return Address{std::string(words[3]), *port};
}

bool is_master_role(const redisReply* reply) {
    return reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
           text_of(reply->element[0]) == "master";
}

std::string role_of(const redisReply* reply) {
    if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) return std::string(reply->str, reply->len);
    if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
        !text_of(reply->element[0]).empty())
        return std::string(text_of(reply->element[0]));
    return "no answer";
}

}  // namespace sluice::sentinel
