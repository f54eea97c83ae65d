// Typed inputs: the schema cache, the submit check, GET /v1/types and the OpenAPI document with
// the declared schemas (see type_schemas.hpp).
#include "type_schemas.hpp"

#include "job_reads.hpp"
#include "keys.hpp"
#include "log.hpp"
#include "openapi_json.hpp"
#include "routes.hpp"
#include "shard_context.hpp"

#include <algorithm>
#include <map>

namespace sluice::api {
namespace {

// The name of a type's input schema under the document's components/schemas, whose names
// allow [A-Za-z0-9._-]: a type's ':' becomes '-'.
std::string component_name(std::string_view type) {
    std::string name = "Input." + std::string(type);
    std::replace(name.begin(), name.end(), ':', '-');
    return name;
}

// Makes the local $refs of a schema (relative to the schema: "#", "#/$defs/...") relative to
// the document it is placed in at `base` ("#/components/schemas/{name}").
void rebase_refs(json& schema, const std::string& base) {
    if (schema.is_object()) {
        for (auto& [key, value] : schema.items()) {
            if (key == "$ref" && value.is_string() && value.get_ref<const std::string&>().starts_with("#"))
                value = base + value.get<std::string>().substr(1);
            else
                rebase_refs(value, base);
        }
    } else if (schema.is_array()) {
        for (json& item : schema) rebase_refs(item, base);
    }
}

// Every known type (keys::TYPES), sorted, with its stored schema ("" for none), read in one
// transaction; nullopt when Redis does not answer.
awaitable<std::optional<std::vector<std::pair<std::string, std::string>>>> read_types(ShardContext& ctx) {
    std::vector<std::vector<std::string>> commands;
    commands.push_back(args("SMEMBERS", std::string(keys::TYPES)));
    commands.push_back(args("HGETALL", std::string(keys::TYPE_SCHEMAS)));
    const auto replies = co_await transaction(ctx, std::move(commands));
    if (!replies) co_return std::nullopt;
    std::map<std::string, std::string> schemas;
    const auto& pairs = (*replies)[1].elements;
    for (std::size_t i = 0; i + 1 < pairs.size(); i += 2) schemas[pairs[i].str] = pairs[i + 1].str;
    std::vector<std::pair<std::string, std::string>> types;
    for (const RedisValue& name : (*replies)[0].elements) {
        const auto schema = schemas.find(name.str);
        types.emplace_back(name.str, schema == schemas.end() ? "" : schema->second);
    }
    std::sort(types.begin(), types.end());
    co_return types;
}

}  // namespace

const SchemaCache::Entry& SchemaCache::store(const std::string& type, std::string text, TimePoint now) {
    if (Entry* known = find(type); known != nullptr && known->text == text) {
        known->read_at = now;
        return *known;
    }
    Entry entry{std::move(text), nullptr, now};
    if (!entry.text.empty()) {
        auto compiled = json_schema::compile(entry.text);
        if (auto* why = std::get_if<std::string>(&compiled)) {
            log::warn("job type {}: its input schema is not usable, its inputs go unchecked: {}", type, *why);
        } else {
            entry.compiled = std::get<std::shared_ptr<const json_schema::CompiledSchema>>(compiled);
            if (!entry.compiled->note().empty())
                log::info("job type {}: input schema in use; {}", type, entry.compiled->note());
        }
    }
    return remember(type, std::move(entry));
}

HttpResult invalid_input(std::string_view type, const json_schema::Failure& failure) {
    const std::string where = failure.path.empty() ? "input" : "input at " + failure.path;
    JsonWriter w;
    w.begin_object().key("error").begin_object();
    w.key("code").string(errors::INVALID_INPUT.name);
    w.key("message").string(where + " does not fit the schema of job type " + std::string(type) + ": " +
                            failure.message);
    w.key("path").string(failure.path);
    w.end_object().end_object();
    HttpResult r;
    r.status = errors::INVALID_INPUT.status;
    r.body = w.take();
    return r;
}

awaitable<std::optional<HttpResult>> check_input(ShardContext& ctx, const std::string& type, const json& input) {
    const auto now = std::chrono::steady_clock::now();
    const SchemaCache::Entry* entry = ctx.schemas.fresh(type, now);
    if (entry == nullptr) {
        std::vector<std::string> command = args("HGET", std::string(keys::TYPE_SCHEMAS), type);
        RedisValue stored = co_await ctx.redis.command(std::move(command), REDIS_TIMEOUT);
        // Without Redis the broker cannot store the job either: it answers the submit.
        if (!stored.ok()) co_return std::nullopt;
        entry = &ctx.schemas.store(type, stored.kind == RedisValue::Kind::STRING ? std::move(stored.str) : "", now);
    }
    if (!entry->compiled) co_return std::nullopt;
    const json_schema::Verdict verdict = entry->compiled->validate(input);
    if (verdict.kind == json_schema::Verdict::INVALID) co_return invalid_input(type, verdict.failure);
    if (verdict.kind == json_schema::Verdict::GAVE_UP)
        ctx.unchecked_inputs.warn("inputs past the validator's bounds", log::RateLimited::Clock::now(),
                                  "job type {}: an input was too deep or too costly to check against its schema: "
                                  "submitted unchecked",
                                  type);
    co_return std::nullopt;
}

awaitable<Outcome> list_types(ShardContext& ctx, const RouteRequest&) {
    const auto types = co_await read_types(ctx);
    if (!types) co_return redis_unavailable();
    const auto now = std::chrono::steady_clock::now();
    JsonWriter w;
    w.begin_object().key("types").begin_array();
    for (const auto& [name, text] : *types) {
        const SchemaCache::Entry& entry = ctx.schemas.store(name, text, now);
        const auto schema = text.empty() ? std::nullopt : json_schema::parse_bounded(text);
        w.begin_object().key("name").string(name).key("schema");
        if (schema && (schema->is_object() || schema->is_boolean())) w.raw(dump_json(*schema));
        else w.null();
        w.key("checked").raw(entry.compiled ? "true" : "false").end_object();
    }
    w.end_array().end_object();
    HttpResult r;
    r.body = w.take();
    co_return r;
}

awaitable<Outcome> openapi(ShardContext& ctx, const RouteRequest&) {
    HttpResult r;
    const auto now = std::chrono::steady_clock::now();
    if (!ctx.schemas.document.empty() && now - ctx.schemas.document_at < SchemaCache::TTL) {
        r.body = ctx.schemas.document;
        co_return r;
    }
    const auto types = co_await read_types(ctx);
    r.body = std::string(OPENAPI_JSON);
    // Without Redis, or with no schema declared, the document as written.
    if (!types) co_return r;
    ctx.schemas.document_at = now;
    ctx.schemas.document = r.body;
    static const json BASE = json::parse(OPENAPI_JSON);
    json doc;
    json submits = json::array();
    for (const auto& [name, text] : *types) {
        if (text.empty() || !ctx.schemas.store(name, text, now).compiled) continue;
        auto schema = json_schema::parse_bounded(text);
        if (doc.is_null()) doc = BASE;
        const std::string component = component_name(name);
        rebase_refs(*schema, "#/components/schemas/" + component);
        doc["components"]["schemas"][component] = std::move(*schema);
        submits.push_back({{"type", "object"},
                           {"properties", {{"type", {{"const", name}}},
                                           {"input", {{"$ref", "#/components/schemas/" + component}}}}},
                           {"required", {"type"}}});
    }
    if (doc.is_null()) co_return r;
    doc["components"]["schemas"]["TypedJobSubmit"] = {
        {"description", "The POST /v1/jobs bodies of the job types that declare an input schema, told apart by "
                        "`type`: the api answers 422 invalid_input for an input that does not fit (GET /v1/types)."},
        {"oneOf", std::move(submits)}};
    r.body = dump_json(doc);
    ctx.schemas.document = r.body;
    co_return r;
}

}  // namespace sluice::api
