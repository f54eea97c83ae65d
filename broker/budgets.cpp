// Token budgets and model pauses: see budgets.hpp.
#include "budgets.hpp"

#include <msgpack.hpp>

#include <algorithm>

namespace sluice::broker {

std::uint64_t TokenEstimator::estimate(std::size_t input_bytes, std::uint64_t input_max_tokens) const {
    const std::uint64_t prompt = chars_per_token == 0 ? 0 : (input_bytes + chars_per_token - 1) / chars_per_token;
    return prompt + (input_max_tokens != 0 ? input_max_tokens : max_tokens);
}

std::uint64_t input_max_tokens(std::string_view input) {
    try {
        // The input was checked at submit; the depth bound keeps a hostile one cheap anyway.
        const msgpack::unpack_limit limit(input.size(), input.size(), input.size(), input.size(), input.size(), 32);
        std::size_t offset = 0;
        bool referenced = false;
        const msgpack::object_handle handle =
            msgpack::unpack(input.data(), input.size(), offset, referenced, nullptr, nullptr, limit);
        const msgpack::object& root = handle.get();
        if (root.type != msgpack::type::MAP) return 0;
        for (std::uint32_t i = 0; i < root.via.map.size; ++i) {
            const msgpack::object_kv& kv = root.via.map.ptr[i];
            if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == "max_tokens")
                return kv.val.type == msgpack::type::POSITIVE_INTEGER ? std::min(kv.val.via.u64, MAX_INPUT_MAX_TOKENS) : 0;
        }
    } catch (const std::exception&) {
    }
    return 0;
}

Budgets::Budgets(std::chrono::milliseconds window) : window_(std::max(window, std::chrono::milliseconds(1))) {}

void Budgets::set_limits(std::map<Key, BudgetLimits> limits) {
    limits_ = std::move(limits);
    for (auto it = spend_.begin(); it != spend_.end();)
        it = limits_.count(it->first) != 0 ? std::next(it) : spend_.erase(it);
}

Budgets::Spend& Budgets::current(const Key& key, std::int64_t now_ms) {
    Spend& spend = spend_[key];
    const std::int64_t window = window_of(now_ms);
    if (spend.window != window) spend = Spend{window, 0, 0};
    return spend;
}

bool Budgets::admits(const std::string& tenant, const std::string& model, std::uint64_t tokens, std::int64_t now_ms) {
    const Key key{tenant, model};
    const auto limits = limits_.find(key);
    if (limits == limits_.end()) return true;
    const Spend& spend = current(key, now_ms);
    const BudgetLimits& limit = limits->second;
    if (limit.requests_per_minute != 0 && spend.requests + 1 > limit.requests_per_minute) return false;
    if (limit.tokens_per_minute == 0) return true;
    return spend.tokens + tokens <= limit.tokens_per_minute || (tokens > limit.tokens_per_minute && spend.tokens == 0);
}

std::optional<Budgets::Change> Budgets::reserve(const std::string& job_id, const std::string& tenant,
                                                const std::string& model, std::uint64_t tokens,
                                                std::uint64_t padding, std::int64_t now_ms) {
    Key key{tenant, model};
    if (limits_.count(key) == 0) return std::nullopt;
    Spend& spend = current(key, now_ms);
    spend.tokens += tokens;
    spend.requests += 1;
    reserved_[job_id] = Reservation{key, spend.window, tokens, padding};
    return Change{tenant, model, spend.window, static_cast<std::int64_t>(tokens), 1};
}

std::optional<Budgets::Change> Budgets::settle(const std::string& job_id, std::uint64_t tokens, bool final,
                                               std::uint64_t padding) {
    const auto found = reserved_.find(job_id);
    if (found == reserved_.end()) return std::nullopt;
    Reservation& held = found->second;
    const std::int64_t delta = static_cast<std::int64_t>(tokens) - static_cast<std::int64_t>(held.tokens);
    Change change{held.key.first, held.key.second, held.window, delta, 0};
    // A window that has turned is not counted here any more; Redis keeps it right.
    if (auto spend = spend_.find(held.key); spend != spend_.end() && spend->second.window == held.window)
        spend->second.tokens = static_cast<std::uint64_t>(
            std::max<std::int64_t>(0, static_cast<std::int64_t>(spend->second.tokens) + delta));
    held.tokens = tokens;
    held.padding = padding;
    if (final) reserved_.erase(found);
    if (delta == 0) return std::nullopt;
    return change;
}

std::optional<Budgets::Held> Budgets::reserved(const std::string& job_id) const {
    const auto found = reserved_.find(job_id);
    if (found == reserved_.end()) return std::nullopt;
    return Held{found->second.tokens, found->second.padding};
}

void Budgets::load(const std::string& tenant, const std::string& model, std::int64_t window, std::uint64_t tokens,
                   std::uint64_t requests) {
    Spend& spend = spend_[Key{tenant, model}];
    if (spend.window != window) spend = Spend{window, 0, 0};
    spend.tokens = std::max(spend.tokens, tokens);
    spend.requests = std::max(spend.requests, requests);
}

void Budgets::pause(const std::string& model, std::chrono::steady_clock::time_point now,
                    std::chrono::milliseconds retry_after) {
    const auto until = now + std::clamp(retry_after, std::chrono::milliseconds(0), MAX_MODEL_PAUSE);
    auto& held = paused_[model];
    held = std::max(held, until);
}

bool Budgets::paused(const std::string& model, std::chrono::steady_clock::time_point now) {
    const auto found = paused_.find(model);
    if (found == paused_.end()) return false;
    if (found->second > now) return true;
    paused_.erase(found);
    return false;
}

std::vector<std::pair<std::string, std::int64_t>> Budgets::pauses(std::chrono::steady_clock::time_point now) {
    std::vector<std::pair<std::string, std::int64_t>> out;
    for (auto it = paused_.begin(); it != paused_.end();) {
        if (it->second <= now) {
            it = paused_.erase(it);
            continue;
        }
        out.emplace_back(it->first, std::chrono::duration_cast<std::chrono::milliseconds>(it->second - now).count());
        ++it;
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<Budgets::Use> Budgets::usage(std::int64_t now_ms) {
    std::vector<Use> out;
    out.reserve(limits_.size());
    for (const auto& [key, limits] : limits_) {
        const Spend& spend = current(key, now_ms);
        out.push_back(Use{key.first, key.second, limits, spend.tokens, spend.requests});
    }
    return out;
}

std::string Budgets::report(std::int64_t now_ms, std::chrono::steady_clock::time_point now) {
    const std::vector<Use> uses = usage(now_ms);
    const auto paused = pauses(now);
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> out(buffer);
    out.pack_map(4);
    out.pack(std::string_view("as_of_ms"));
    out.pack(now_ms);
    out.pack(std::string_view("window_ms"));
    out.pack(static_cast<std::int64_t>(window_.count()));
    out.pack(std::string_view("budgets"));
    out.pack_array(static_cast<std::uint32_t>(uses.size()));
    for (const Use& use : uses) {
        out.pack_array(6);
        out.pack(use.tenant);
        out.pack(use.model);
        out.pack(use.limits.tokens_per_minute);
        out.pack(use.limits.requests_per_minute);
        out.pack(use.tokens);
        out.pack(use.requests);
    }
    out.pack(std::string_view("paused"));
    out.pack_array(static_cast<std::uint32_t>(paused.size()));
    for (const auto& [model, left_ms] : paused) {
        out.pack_array(2);
        out.pack(model);
        out.pack(left_ms);
    }
    return std::string(buffer.data(), buffer.size());
}

}  // namespace sluice::broker
