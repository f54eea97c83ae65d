// Redis memory against its maxmemory (see storage_watch.hpp).
#include "storage_watch.hpp"

#include <charconv>

namespace sluice::broker {
namespace {

// The value of `name:` on a line of its own in INFO text.
std::optional<std::uint64_t> info_field(std::string_view info, std::string_view name) {
    for (std::size_t start = 0; start < info.size();) {
        std::size_t end = info.find('\n', start);
        if (end == std::string_view::npos) end = info.size();
        std::string_view line = info.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > name.size() && line.starts_with(name) && line[name.size()] == ':') {
            const std::string_view digits = line.substr(name.size() + 1);
            std::uint64_t value = 0;
            const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
            if (ec != std::errc() || ptr != digits.data() + digits.size() || digits.empty()) return std::nullopt;
            return value;
        }
        start = end + 1;
    }
    return std::nullopt;
}

}  // namespace

std::optional<MemoryUse> parse_info_memory(std::string_view info) {
    const auto used = info_field(info, "used_memory");
    const auto max = info_field(info, "maxmemory");
    if (!used || !max) return std::nullopt;
    return MemoryUse{*used, *max};
}

bool StorageWatch::update(MemoryUse use) {
    last_ = use;
    const bool was = full_;
    if (use.max == 0) {
        full_ = false;
    } else {
        const double percent = 100.0 * static_cast<double>(use.used) / static_cast<double>(use.max);
        full_ = full_ ? percent >= full_percent_ - RELIEF_PERCENT : percent >= full_percent_;
    }
    return full_ != was;
}

}  // namespace sluice::broker
