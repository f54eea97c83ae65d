// What one shard has read from Redis lately, by name, each entry for TTL: API keys (auth.hpp)
// and job types' input schemas (type_schemas.hpp). A change in Redis holds on every shard of
// every api instance within TTL. Loop thread only, like the ShardContext that owns it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <unordered_map>

namespace sluice::api {

// `E` has a `read_at` (std::chrono::steady_clock::time_point): when it was read.
template <class E>
class ReadCache {
public:
    using Entry = E;
    using TimePoint = std::chrono::steady_clock::time_point;
    static constexpr auto TTL = std::chrono::seconds(1);
    // Past this many remembered names (most of them, for keys, a client's guesses) the cache
    // starts over.
    static constexpr std::size_t MAX_ENTRIES = 10000;

    // The entry of `name` read less than TTL ago, or null.
    const Entry* fresh(const std::string& name, TimePoint now) const {
        const auto it = entries_.find(name);
        return it != entries_.end() && now - it->second.read_at < TTL ? &it->second : nullptr;
    }
    // The entry of `name`, however old, or null.
    Entry* find(const std::string& name) {
        const auto it = entries_.find(name);
        return it == entries_.end() ? nullptr : &it->second;
    }
    Entry& remember(const std::string& name, Entry entry) {
        if (entries_.size() >= MAX_ENTRIES && entries_.count(name) == 0) entries_.clear();
        return entries_.insert_or_assign(name, std::move(entry)).first->second;
    }

private:
    std::unordered_map<std::string, Entry> entries_;
};

}  // namespace sluice::api
