// Token budget handlers (see budget_routes.hpp).
#include "budget_routes.hpp"

#include "job_reads.hpp"
#include "json_writer.hpp"
#include "keys.hpp"
#include "names.hpp"

#include <cstdlib>

namespace sluice::api {
namespace {

// A budget request is four short fields; anything longer is not one.
constexpr std::size_t MAX_BUDGET_REQUEST_BYTES = 4096;

const std::string MODEL_RULE = "model must be 1.." + std::to_string(MAX_MODEL_NAME) + " of [A-Za-z0-9_.:/@+-]";

void budget_members(JsonWriter& w, std::string_view tenant, std::string_view model, std::int64_t tokens,
                    std::int64_t requests) {
    w.key("tenant").string(tenant).key("model").string(model);
    w.key("tokens_per_minute").integer(tokens).key("requests_per_minute").integer(requests);
}

std::optional<ApiError> parse_limit(const json& value, const std::string& field, std::int64_t max, std::int64_t& out) {
    if (!value.is_number_integer() || value.get<std::int64_t>() < 0 || value.get<std::int64_t>() > max)
        return api_error(errors::INVALID_REQUEST, field + " must be an integer in 0.." + std::to_string(max));
    out = value.get<std::int64_t>();
    return std::nullopt;
}

// The tenant and model of DELETE /v1/budgets?tenant=&model=.
Checked<std::pair<std::string, std::string>> budget_of_query(const Target& target) {
    std::pair<std::string, std::string> out;
    for (const auto& [name, value] : target.query) {
        if (name == "tenant") out.first = value;
        else if (name == "model") out.second = value;
        else return api_error(errors::INVALID_REQUEST, name + " is not a parameter of DELETE /v1/budgets (tenant, model)");
    }
    if (!valid_tenant(out.first)) return api_error(errors::INVALID_REQUEST, "tenant must match [A-Za-z0-9_.-]{1,64}");
    if (!valid_model_name(out.second)) return api_error(errors::INVALID_REQUEST, MODEL_RULE);
    return out;
}

}  // namespace

Checked<BudgetRequest> parse_budget_request(std::string_view body) {
    if (body.size() > MAX_BUDGET_REQUEST_BYTES)
        return api_error(errors::INVALID_REQUEST,
                         "a budget request is at most " + std::to_string(MAX_BUDGET_REQUEST_BYTES) + " bytes");
    auto parsed = parse_json_object(body);
    if (auto* error = std::get_if<ApiError>(&parsed)) return *error;
    const json& doc = std::get<json>(parsed);
    BudgetRequest out;
    for (const auto& [field, value] : doc.items()) {
        if (field == "tokens_per_minute") {
            if (auto error = parse_limit(value, field, MAX_TOKENS_PER_MINUTE, out.tokens_per_minute)) return *error;
        } else if (field == "requests_per_minute") {
            if (auto error = parse_limit(value, field, MAX_REQUESTS_PER_MINUTE, out.requests_per_minute)) return *error;
        } else if (field == "tenant" || field == "model") {
            if (!value.is_string()) return api_error(errors::INVALID_REQUEST, field + " must be a string");
        } else {
            return api_error(errors::INVALID_REQUEST,
                             field + " is not a budget field (tenant, model, tokens_per_minute, requests_per_minute)");
        }
    }
    for (const char* field : {"tenant", "model"})
        if (!doc.contains(field)) return api_error(errors::INVALID_REQUEST, std::string(field) + " is required");
    out.tenant = doc["tenant"].get<std::string>();
    if (!valid_tenant(out.tenant)) return api_error(errors::INVALID_REQUEST, "tenant must match [A-Za-z0-9_.-]{1,64}");
    out.model = doc["model"].get<std::string>();
    if (!valid_model_name(out.model)) return api_error(errors::INVALID_REQUEST, MODEL_RULE);
    if (out.tokens_per_minute == 0 && out.requests_per_minute == 0)
        return api_error(errors::INVALID_REQUEST,
                         "set tokens_per_minute or requests_per_minute (DELETE /v1/budgets removes a budget)");
    return out;
}

// PUT /v1/budgets -> 200 with the budget as stored (made or replaced).
awaitable<Outcome> put_budget(ShardContext& ctx, const RouteRequest& req) {
    auto parsed = parse_budget_request(req.http.body());
    if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
    const BudgetRequest& wanted = std::get<BudgetRequest>(parsed);
    const std::string field = keys::budget_field(wanted.tenant, wanted.model);
    std::vector<std::vector<std::string>> reads;
    reads.push_back(args("HLEN", std::string(keys::BUDGETS)));
    reads.push_back(args("HGET", std::string(keys::BUDGETS), field));  // Redis's ACL for sluice has no HEXISTS
    const auto held = co_await transaction(ctx, std::move(reads));
    if (!held) co_return redis_unavailable();
    if ((*held)[0].integer >= MAX_BUDGETS && (*held)[1].kind != RedisValue::Kind::STRING)
        co_return error_result(errors::INVALID_REQUEST, "there are " + std::to_string(MAX_BUDGETS) +
                                                            " budgets already, the most Sluice keeps: delete some first");
    std::vector<std::string> store = args("HSET", std::string(keys::BUDGETS), field,
                                          std::to_string(wanted.tokens_per_minute) + " " +
                                              std::to_string(wanted.requests_per_minute));
    const RedisValue stored = co_await ctx.redis.command(std::move(store), REDIS_TIMEOUT);
    if (!stored.ok()) co_return redis_unavailable();
    JsonWriter w;
    w.begin_object();
    budget_members(w, wanted.tenant, wanted.model, wanted.tokens_per_minute, wanted.requests_per_minute);
    w.end_object();
    co_return text_result(200, w.take());
}

// GET /v1/budgets: every budget (at most MAX_BUDGETS), by tenant then model.
awaitable<Outcome> list_budgets(ShardContext& ctx, const RouteRequest& req) {
    if (!req.target.query.empty())
        co_return error_result(errors::INVALID_REQUEST, "GET /v1/budgets takes no parameters");
    std::vector<std::string> read = args("HGETALL", std::string(keys::BUDGETS));
    const RedisValue all = co_await ctx.redis.command(std::move(read), REDIS_TIMEOUT);
    if (!all.ok()) co_return redis_unavailable();
    std::map<std::pair<std::string, std::string>, std::pair<std::int64_t, std::int64_t>> budgets;
    for (std::size_t i = 0; i + 1 < all.elements.size(); i += 2) {
        const std::string& field = all.elements[i].str;
        const auto space = field.find(' ');
        if (space == std::string::npos) continue;
        char* end = nullptr;
        const std::int64_t tokens = std::strtoll(all.elements[i + 1].str.c_str(), &end, 10);
        budgets[{field.substr(0, space), field.substr(space + 1)}] = {tokens, std::strtoll(end, nullptr, 10)};
    }
    JsonWriter w;
    w.begin_object().key("budgets").begin_array();
    for (const auto& [key, limits] : budgets) {
        w.begin_object();
        budget_members(w, key.first, key.second, limits.first, limits.second);
        w.end_object();
    }
    w.end_array().end_object();
    co_return text_result(200, w.take());
}

// DELETE /v1/budgets?tenant=&model=
awaitable<Outcome> delete_budget(ShardContext& ctx, const RouteRequest& req) {
    auto which = budget_of_query(req.target);
    if (auto* error = std::get_if<ApiError>(&which)) co_return error_result(*error);
    const auto& [tenant, model] = std::get<std::pair<std::string, std::string>>(which);
    std::vector<std::string> remove = args("HDEL", std::string(keys::BUDGETS), keys::budget_field(tenant, model));
    const RedisValue removed = co_await ctx.redis.command(std::move(remove), REDIS_TIMEOUT);
    if (!removed.ok()) co_return redis_unavailable();
    if (removed.integer == 0)
        co_return error_result(errors::BUDGET_NOT_FOUND, "no budget for tenant '" + tenant + "' and model '" + model + "'");
    JsonWriter w;
    w.begin_object().key("tenant").string(tenant).key("model").string(model).key("deleted").raw("true").end_object();
    co_return text_result(200, w.take());
}

}  // namespace sluice::api
