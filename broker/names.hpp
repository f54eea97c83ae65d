// What the broker accepts as a job type or a job id. Both become parts of Redis keys
// (schemas/PROTOCOL.md), so they keep to a safe alphabet and a bounded length.
#pragma once

#include <cctype>
#include <cstddef>
#include <string_view>

namespace sluice::broker {

// Longest job type, job id or worker name the broker keeps.
inline constexpr std::size_t MAX_NAME = 128;

// True for 1..MAX_NAME characters of letters, digits, '_', '.', ':' and '-'.
inline bool valid_job_type(std::string_view name) {
    if (name.empty() || name.size() > MAX_NAME) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != ':' && c != '-') return false;
    return true;
}

// True for 1..MAX_NAME characters of hex digits and '-' (a UUID, for one).
inline bool valid_job_id(std::string_view id) {
    if (id.empty() || id.size() > MAX_NAME) return false;
    for (char c : id)
        if (!std::isxdigit(static_cast<unsigned char>(c)) && c != '-') return false;
    return true;
}

}  // namespace sluice::broker
