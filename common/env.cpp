// Configuration from the environment (see env.hpp).
#include "env.hpp"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string_view>

namespace sluice {
namespace {

const char* value_of(const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : nullptr;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

}  // namespace

void env_fail(const char* name, const std::string& problem) {
    std::fprintf(stderr, "sluice: %s %s\n", name, problem.c_str());
    std::exit(CONFIG_ERROR_EXIT);
}

std::string env_string(const char* name, std::string fallback) {
    const char* value = value_of(name);
    return value != nullptr ? std::string(value) : std::move(fallback);
}

long long env_int(const char* name, long long min, long long max, long long fallback) {
    const char* text = value_of(name);
    if (text == nullptr) return fallback;
    const std::string_view digits = trim(text);
    long long value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || value < min || value > max)
        env_fail(name, "must be an integer in " + std::to_string(min) + ".." + std::to_string(max) + ", got '" +
                           std::string(text) + "'");
    return value;
}

std::size_t env_bytes(const char* name, std::size_t fallback) {
    return static_cast<std::size_t>(env_int(name, 1, 1LL << 30, static_cast<long long>(fallback)));
}

std::chrono::milliseconds env_ms(const char* name, std::chrono::milliseconds min, std::chrono::milliseconds max,
                                 std::chrono::milliseconds fallback) {
    return std::chrono::milliseconds(env_int(name, min.count(), max.count(), fallback.count()));
}

std::string env_secret_file(const char* name) {
    const char* path = value_of(name);
    if (path == nullptr) return {};
    std::ifstream file(path, std::ios::binary);
    if (!file) env_fail(name, "names '" + std::string(path) + "', which cannot be read: " + std::strerror(errno));
    std::string secret((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    while (!secret.empty() && secret.back() == '\n') secret.pop_back();
    if (secret.empty()) env_fail(name, "names '" + std::string(path) + "', which is empty");
    return secret;
}

std::vector<std::string> env_list(const char* name) {
    std::vector<std::string> items;
    const char* text = value_of(name);
    if (text == nullptr) return items;
    std::string_view rest(text);
    while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        const std::string_view item = trim(rest.substr(0, comma));
        if (!item.empty()) items.emplace_back(item);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    return items;
}

}  // namespace sluice
