// A JSON Schema validator for job inputs (README.md, "Typed inputs"), written here because
// Debian 12 packages none for C++. It covers what pydantic v2 emits for a model (draft 2020-12):
// type (one or a list), properties, required, additionalProperties (bool or schema),
// min/maxProperties, items, prefixItems, min/maxItems, uniqueItems, enum, const,
// min/maxLength (in code points), minimum, maximum, exclusiveMinimum, exclusiveMaximum,
// multipleOf, anyOf, oneOf, allOf, not, and $ref to "#" or "#/$defs/..." ("#/definitions/...");
// annotations (title, description, default, examples, format, discriminator...) are ignored.
// One departure from the draft: an integer is a number written without a fraction or exponent
// (3, not 3.0), as the api reads its own options and the worker's pydantic model (strict mode)
// checks the input again.
//
// `pattern` is not checked here: std::regex backtracks (a hostile pattern or input can take it
// exponential time or overflow its stack), and the worker's pydantic model checks it again with
// a linear-time engine anyway. A schema holding one compiles with a note saying so. A schema
// using another assertion keyword (if/then/else, patternProperties, a remote $ref...) does not
// compile: its type goes unchecked rather than half checked.
//
// Everything is bounded: the schema's size and nesting when compiled, the validation's depth
// and its steps (a hostile schema of nested anyOf cannot make one submit run for minutes);
// past a bound validation gives up and the input counts as unchecked, never as refused.
// Pure and thread-safe: a CompiledSchema is immutable once built.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::api::json_schema {

// Nodes (one per schema object or boolean) a compiled schema may hold.
inline constexpr std::size_t MAX_NODES = 10000;
// Deepest nesting of the schema document as parsed.
inline constexpr int MAX_SCHEMA_DEPTH = 64;
// Deepest recursion of one validation (a level per value descended into or schema applied in
// place), and the most schema applications it may make in all.
inline constexpr int MAX_VALIDATION_DEPTH = 256;
inline constexpr std::size_t MAX_VALIDATION_STEPS = 200000;

// Why a value does not validate: where (a JSON Pointer into the input, "" for the input itself)
// and what was expected there.
struct Failure {
    std::string path;
    std::string message;
};

// The outcome of a validation: valid, a Failure, or gave up (a bound ran out: unchecked).
struct Verdict {
    enum Kind { VALID, INVALID, GAVE_UP } kind = VALID;
    Failure failure;
};

struct Node;

class CompiledSchema {
public:
    CompiledSchema();
    ~CompiledSchema();
    CompiledSchema(const CompiledSchema&) = delete;
    CompiledSchema& operator=(const CompiledSchema&) = delete;

    // Checks `value` against the schema. Thread-safe.
    Verdict validate(const nlohmann::json& value) const;
    // What this schema leaves unchecked (e.g. "pattern is not checked"), empty if nothing.
    const std::string& note() const { return note_; }

private:
    friend class Compiler;
    std::vector<Node> nodes_;  // nodes_[0] is the root
    std::string note_;
};

// Compiles the schema in `text` (JSON). Returns the compiled schema, or why it cannot be used.
std::variant<std::shared_ptr<const CompiledSchema>, std::string> compile(std::string_view text);

// Parses `text` as JSON with nesting bounded by MAX_SCHEMA_DEPTH; nullopt if it is not JSON.
std::optional<nlohmann::json> parse_bounded(std::string_view text);

}  // namespace sluice::api::json_schema
