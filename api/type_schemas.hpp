// Typed inputs (README.md, "Typed inputs"): the input JSON Schemas workers declare for their job
// types (keys::TYPE_SCHEMAS, stored by the broker), checked at submit, listed by GET /v1/types
// and added to the OpenAPI document. Each shard keeps the schemas it read for SCHEMA_CACHE_TTL,
// compiled once per text (api/json_schema.hpp): a changed schema holds on every api instance
// within that time. Loop thread only, like the ShardContext it reads through.
#pragma once

#include "json_schema.hpp"
#include "loop.hpp"
#include "read_cache.hpp"
#include "request.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace sluice::api {

struct ShardContext;
struct RouteRequest;
struct Outcome;

// A type's input schema as one shard read it: as stored, and compiled.
struct SchemaEntry {
    std::string text;  // as stored; empty: the type has none
    std::shared_ptr<const json_schema::CompiledSchema> compiled;  // null: none, or unusable
    std::chrono::steady_clock::time_point read_at;
};

// The schemas one shard has read lately, by job type, each for TTL.
class SchemaCache : public ReadCache<SchemaEntry> {
public:
    // Keeps `text` as the schema of `type`, compiled (again only when the text changed: an
    // unusable one is logged once per change) and returns its entry.
    const Entry& store(const std::string& type, std::string text, TimePoint now);

    // GET /openapi.json as last built, and when: a public route reads Redis once per TTL at most.
    std::string document;
    TimePoint document_at;
};

// The 422 invalid_input for `failure`: {"error": {"code", "message", "path"}}, `path` a JSON
// Pointer into the submitted input.
HttpResult invalid_input(std::string_view type, const json_schema::Failure& failure);

// nullopt when `input` fits the declared schema of `type` (or it has none, or it cannot be
// checked: an unusable schema, a validation past its bounds, Redis not answering); else the
// 422 invalid_input to answer.
awaitable<std::optional<HttpResult>> check_input(ShardContext& ctx, const std::string& type, const json& input);

// GET /v1/types
awaitable<Outcome> list_types(ShardContext& ctx, const RouteRequest& req);

// GET /openapi.json: schemas/openapi.yaml (made JSON at build time) with every declared input
// schema under components/schemas ("Input.{type}") and TypedJobSubmit, the submit bodies they
// allow, one per type.
awaitable<Outcome> openapi(ShardContext& ctx, const RouteRequest& req);

}  // namespace sluice::api
