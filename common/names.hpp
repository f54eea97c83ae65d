// What Sluice accepts as a job type, a job id, a tenant, an Idempotency-Key and a concurrency
// key, checked alike by the api, the broker (again, whoever sent them) and the broker's config
// reader. Most become parts of Redis keys (common/keys.hpp), so they keep to a safe alphabet and
// a bounded length (common/limits.hpp).
#pragma once

#include "limits.hpp"

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice {

// True for 1..limits::MAX_TYPE_NAME characters of letters, digits, '_', '.', ':' and '-'.
inline bool valid_job_type(std::string_view name) {
    if (name.empty() || name.size() > limits::MAX_TYPE_NAME) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != ':' && c != '-') return false;
    return true;
}

// The longest model name a worker may declare or a budget may name (token budgets).
inline constexpr std::size_t MAX_MODEL_NAME = 128;

// True for a model name (READY's models, the budgets' routes): 1..MAX_MODEL_NAME characters of
// letters, digits, '_', '.', ':', '/', '@', '+' and '-' ("gpt-4o-mini", "meta-llama/Llama-3.1-8B").
inline bool valid_model_name(std::string_view name) {
    if (name.empty() || name.size() > MAX_MODEL_NAME) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != ':' && c != '/' && c != '@' &&
            c != '+' && c != '-')
            return false;
    return true;
}

// True for a UUID as the api makes job ids: 8-4-4-4-12 hex digits (either case).
inline bool is_uuid(std::string_view id) {
    if (id.size() != 36) return false;
    for (std::size_t i = 0; i < id.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? id[i] != '-' : !std::isxdigit(static_cast<unsigned char>(id[i]))) return false;
    }
    return true;
}

// True for 1..limits::MAX_TENANT_NAME characters of letters, digits, '_', '.' and '-'.
inline bool valid_tenant(std::string_view name) {
    if (name.empty() || name.size() > limits::MAX_TENANT_NAME) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
    return true;
}

// True for 1..`max` visible ASCII characters (0x21..0x7e).
inline bool visible_ascii(std::string_view text, std::size_t max) {
    if (text.empty() || text.size() > max) return false;
    for (char c : text)
        if (c < 0x21 || c > 0x7e) return false;
    return true;
}

// True for an Idempotency-Key: 1..limits::MAX_IDEMPOTENCY_KEY visible ASCII characters.
inline bool valid_idempotency_key(std::string_view key) { return visible_ascii(key, limits::MAX_IDEMPOTENCY_KEY); }

// True for a concurrency key: 1..limits::MAX_CONCURRENCY_KEY visible ASCII characters.
inline bool valid_concurrency_key(std::string_view key) { return visible_ascii(key, limits::MAX_CONCURRENCY_KEY); }

// True for a job's concurrency options as a SUBMIT carries them: none (an empty key, limit 0),
// or a valid key with a limit in limits::CONCURRENCY_LIMIT_MIN..MAX.
inline bool valid_concurrency(std::string_view key, std::int64_t limit) {
    if (key.empty()) return limit == 0;
    return valid_concurrency_key(key) && limit >= limits::CONCURRENCY_LIMIT_MIN && limit <= limits::CONCURRENCY_LIMIT_MAX;
}

}  // namespace sluice
