// What Sluice accepts as a job type or a job id, checked alike by the api, the broker (again,
// whoever sent them) and the broker's config reader. Both become parts of Redis keys
// (common/keys.hpp), so they keep to a safe alphabet and a bounded length (common/limits.hpp).
#pragma once

#include "limits.hpp"

#include <cctype>
#include <cstddef>
#include <string_view>

namespace sluice {

// True for 1..limits::MAX_TYPE_NAME characters of letters, digits, '_', '.', ':' and '-'.
inline bool valid_job_type(std::string_view name) {
    if (name.empty() || name.size() > limits::MAX_TYPE_NAME) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != ':' && c != '-') return false;
    return true;
}

// True for 1..limits::MAX_JOB_ID characters of hex digits and '-' (a UUID, for one).
inline bool valid_job_id(std::string_view id) {
    if (id.empty() || id.size() > limits::MAX_JOB_ID) return false;
    for (char c : id)
        if (!std::isxdigit(static_cast<unsigned char>(c)) && c != '-') return false;
    return true;
}

}  // namespace sluice
