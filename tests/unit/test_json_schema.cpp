// The job input validator (api/json_schema.hpp): each keyword, $ref, the failure's JSON Pointer
// and message, and hostile schemas (deep, cyclic, huge numbers, endless alternatives).
#include "json_schema.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace sluice::api::json_schema;
using json = nlohmann::json;

namespace {

std::shared_ptr<const CompiledSchema> compiled(const std::string& text) {
    auto result = compile(text);
    if (auto* why = std::get_if<std::string>(&result)) FAIL_CHECK("does not compile: " << *why << " : " << text);
    return std::get<std::shared_ptr<const CompiledSchema>>(result);
}

std::string refusal(const std::string& text) {
    auto result = compile(text);
    auto* why = std::get_if<std::string>(&result);
    return why ? *why : "";
}

Verdict verdict(const std::string& schema, const std::string& value) {
    return compiled(schema)->validate(json::parse(value));
}

bool valid(const std::string& schema, const std::string& value) {
    return verdict(schema, value).kind == Verdict::VALID;
}

// The failure's path and message, "path: message".
std::string failure(const std::string& schema, const std::string& value) {
    const Verdict v = verdict(schema, value);
    REQUIRE(v.kind == Verdict::INVALID);
    return v.failure.path + ": " + v.failure.message;
}

// What pydantic 2 emits for a model with a required str, an optional bounded int and a nested
// model list (python_workers/sluice/ai_tasks.py ChatInput is of this shape).
const std::string PYDANTIC = R"({
  "$defs": {"Item": {"properties": {"name": {"title": "Name", "type": "string", "minLength": 1}},
                     "required": ["name"], "title": "Item", "type": "object"}},
  "properties": {
    "text": {"title": "Text", "type": "string"},
    "max_words": {"anyOf": [{"maximum": 500, "minimum": 1, "type": "integer"}, {"type": "null"}],
                  "default": null, "title": "Max Words"},
    "items": {"default": [], "items": {"$ref": "#/$defs/Item"}, "title": "Items", "type": "array"}
  },
  "required": ["text"], "title": "SummarizeInput", "type": "object"})";

}  // namespace

TEST_CASE("a pydantic model's schema: paths and messages of what fails") {
    CHECK(valid(PYDANTIC, R"({"text": "hi"})"));
    CHECK(valid(PYDANTIC, R"({"text": "hi", "max_words": 10, "items": [{"name": "a"}], "extra": 1})"));
    CHECK(valid(PYDANTIC, R"({"text": "hi", "max_words": null})"));
    CHECK(failure(PYDANTIC, R"({})") == "/text: required property 'text' is missing");
    CHECK(failure(PYDANTIC, R"({"text": 5})") == "/text: expected string, got integer");
    CHECK(failure(PYDANTIC, R"({"text": "x", "max_words": "ten"})") ==
          "/max_words: expected one of these: expected integer, got string; expected null, got string");
    CHECK(failure(PYDANTIC, R"({"text": "x", "max_words": 501})").starts_with("/max_words: "));
    CHECK(failure(PYDANTIC, R"({"text": "x", "items": [{"name": "a"}, {"name": ""}]})") ==
          "/items/1/name: expected a string of at least 1 characters, got 0");
    CHECK(failure(PYDANTIC, R"([])") == ": expected object, got array");
}

TEST_CASE("type: one name or a list; an integer is written as one; number takes integers") {
    CHECK(valid(R"({"type": "integer"})", "3"));
    CHECK(failure(R"({"type": "integer"})", "3.0") == ": expected integer, got number");
    CHECK_FALSE(valid(R"({"type": "integer"})", "3.5"));
    CHECK_FALSE(valid(R"({"type": "integer"})", "true"));
    CHECK(valid(R"({"type": "number"})", "3"));
    CHECK(valid(R"({"type": ["string", "null"]})", "null"));
    CHECK(failure(R"({"type": ["string", "null"]})", "1") == ": expected null or string, got integer");
    CHECK(valid(R"({"type": "boolean"})", "false"));
    CHECK(valid("true", R"({"any": "thing"})"));
    CHECK(failure("false", "1") == ": no value is allowed here");
    CHECK(valid("{}", "[1, {}]"));
}

TEST_CASE("objects: properties, required, additionalProperties, min/maxProperties") {
    const std::string closed = R"({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false})";
    CHECK(valid(closed, R"({"a": 1})"));
    CHECK(failure(closed, R"({"a": 1, "b": 2})") == "/b: property 'b' is not allowed");
    const std::string typed = R"({"additionalProperties": {"type": "string"}})";
    CHECK(valid(typed, R"({"x": "y"})"));
    CHECK(failure(typed, R"({"x": 1})") == "/x: expected string, got integer");
    CHECK(failure(R"({"minProperties": 1})", "{}") == ": expected at least 1 properties");
    CHECK_FALSE(valid(R"({"maxProperties": 1})", R"({"a": 1, "b": 2})"));
    CHECK(failure(R"({"properties": {"a/b~c": {"type": "string"}}})", R"({"a/b~c": 1})") ==
          "/a~1b~0c: expected string, got integer");
}

TEST_CASE("arrays: items, prefixItems, min/maxItems, uniqueItems") {
    const std::string tuple = R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false})";
    CHECK(valid(tuple, R"(["a", 1])"));
    CHECK(failure(tuple, R"(["a", "b"])") == "/1: expected integer, got string");
    CHECK(failure(tuple, R"(["a", 1, 2])") == "/2: no value is allowed here");
    CHECK(failure(R"({"minItems": 2})", "[1]") == ": expected at least 2 items, got 1");
    CHECK_FALSE(valid(R"({"maxItems": 1})", "[1, 2]"));
    CHECK(valid(R"({"uniqueItems": true})", R"([1, "1", [1]])"));
    CHECK_FALSE(valid(R"({"uniqueItems": true})", R"([{"a": 1}, {"a": 1}])"));
    CHECK_FALSE(valid(R"({"uniqueItems": true})", "[1, 1.0]"));
}

TEST_CASE("enum and const compare JSON values") {
    CHECK(valid(R"({"enum": ["user", "system", 1]})", R"("user")"));
    CHECK(valid(R"({"enum": ["user", "system", 1]})", "1.0"));
    CHECK(failure(R"({"enum": ["user", "system"]})", R"("robot")") == R"(: expected one of ["user","system"])");
    CHECK(valid(R"({"const": {"a": [1]}})", R"({"a": [1]})"));
    CHECK_FALSE(valid(R"({"const": true})", "1"));
}

TEST_CASE("strings count code points, not bytes") {
    CHECK(valid(R"({"maxLength": 2})", R"("éü")"));
    CHECK_FALSE(valid(R"({"maxLength": 2})", R"("abc")"));
    CHECK(valid(R"({"minLength": 1})", R"("東")"));
    CHECK_FALSE(valid(R"({"minLength": 1})", R"("")"));
}

TEST_CASE("numbers: bounds, exclusive bounds, multipleOf, huge values") {
    CHECK(failure(R"({"minimum": 1})", "0") == ": expected at least 1, got 0");
    CHECK(failure(R"({"maximum": 4096})", "5000") == ": expected at most 4096, got 5000");
    CHECK_FALSE(valid(R"({"exclusiveMinimum": 0})", "0"));
    CHECK(valid(R"({"exclusiveMaximum": 2})", "1.999"));
    CHECK(valid(R"({"multipleOf": 3})", "9"));
    CHECK_FALSE(valid(R"({"multipleOf": 3})", "10"));
    CHECK(valid(R"({"multipleOf": 0.1})", "0.3"));
    CHECK_FALSE(valid(R"({"maximum": 10})", "1e308"));
    CHECK_FALSE(valid(R"({"maximum": 10})", "18446744073709551615"));
    CHECK(valid(R"({"type": "integer"})", "18446744073709551615"));
    CHECK(valid(R"({"minimum": -1e308})", "-1e307"));
    CHECK_FALSE(valid(R"({"multipleOf": 1e-300})", "1e300"));
}

TEST_CASE("anyOf, oneOf, allOf, not") {
    const std::string one = R"({"oneOf": [{"type": "integer"}, {"minimum": 2}]})";
    CHECK(valid(one, "1"));
    CHECK(failure(one, "3") == ": matches more than one of the 'oneOf' schemas");
    CHECK(valid(R"({"allOf": [{"minimum": 1}, {"maximum": 3}]})", "2"));
    CHECK(failure(R"({"allOf": [{"minimum": 1}, {"maximum": 3}]})", "4") == ": expected at most 3, got 4");
    CHECK(failure(R"({"not": {"type": "null"}})", "null") == ": matches a schema it must not ('not')");
    CHECK(valid(R"({"anyOf": [{"type": "string"}, {"type": "integer"}]})", "1"));
}

TEST_CASE("$ref: to the root, to $defs and definitions, recursive models") {
    const std::string tree = R"({"type": "object", "properties": {"value": {"type": "integer"},
        "children": {"type": "array", "items": {"$ref": "#"}}}, "required": ["value"]})";
    CHECK(valid(tree, R"({"value": 1, "children": [{"value": 2, "children": []}]})"));
    CHECK(failure(tree, R"({"value": 1, "children": [{"value": 2, "children": [{}]}]})") ==
          "/children/0/children/0/value: required property 'value' is missing");
    CHECK(valid(R"({"definitions": {"a": {"type": "string"}}, "$ref": "#/definitions/a"})", R"("x")"));
    CHECK(refusal(R"({"$ref": "#/$defs/missing"})").find("points at nothing") != std::string::npos);
    CHECK(refusal(R"({"$ref": "https://example.com/schema"})").find("within the schema") != std::string::npos);
}

TEST_CASE("pattern is noted, not checked; unsupported keywords refuse the schema") {
    auto schema = compiled(R"({"type": "string", "pattern": "^(a+)+$"})");
    CHECK(schema->validate("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!").kind == Verdict::VALID);
    CHECK(schema->note().find("pattern") != std::string::npos);
    CHECK(refusal(R"({"if": {"type": "string"}, "then": {"minLength": 1}})").find("'if'") != std::string::npos);
    CHECK(refusal(R"({"properties": {"a": {"patternProperties": {}}}})").find("/properties/a/patternProperties") !=
          std::string::npos);
    CHECK_FALSE(refusal(R"({"title": "t", "description": "d", "default": 1, "examples": [1], "format": "uri",
                           "discriminator": {"propertyName": "kind"}, "x-extra": true})").size() > 0);
}

TEST_CASE("hostile schemas are refused when compiled, never crash") {
    CHECK_FALSE(refusal("not json").empty());
    CHECK_FALSE(refusal("[1, 2]").empty());
    CHECK_FALSE(refusal(R"({"type": "dragon"})").empty());
    CHECK_FALSE(refusal(R"({"minLength": -1})").empty());
    CHECK_FALSE(refusal(R"({"multipleOf": 0})").empty());
    CHECK_FALSE(refusal(R"({"anyOf": []})").empty());
    CHECK_FALSE(refusal(R"({"required": [1]})").empty());
    // Nested past the parse bound.
    std::string deep;
    for (int i = 0; i < 200; ++i) deep += R"({"items": )";
    deep += "true";
    for (int i = 0; i < 200; ++i) deep += "}";
    CHECK_FALSE(refusal(deep).empty());
    // A cycle that never descends into the value.
    CHECK(refusal(R"({"$ref": "#"})").find("cycle") != std::string::npos);
    CHECK(refusal(R"({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}]}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
                     "$ref": "#/$defs/a"})").find("cycle") != std::string::npos);
    // More nodes than allowed.
    std::string wide = R"({"properties": {)";
    for (std::size_t i = 0; i <= MAX_NODES; ++i) {
        wide += i ? ",\"p" : "\"p";
        wide += std::to_string(i);
        wide += "\": {}";
    }
    wide += "}}";
    CHECK(refusal(wide).find("more than") != std::string::npos);
}

TEST_CASE("a validation past its bounds gives up (the input counts as unchecked)") {
    // Nested alternatives, each level trying every branch: exponential without the step bound.
    std::string nested = R"({"$defs": {"d0": {"type": "integer"})";
    for (int i = 1; i < 40; ++i)
        nested += ", \"d" + std::to_string(i) + R"(": {"anyOf": [{"$ref": "#/$defs/d)" + std::to_string(i - 1) +
                  R"("}, {"$ref": "#/$defs/d)" + std::to_string(i - 1) + R"("}]})";
    nested += R"(}, "$ref": "#/$defs/d39"})";
    CHECK(compiled(nested)->validate(json("not an integer")).kind == Verdict::GAVE_UP);
    // A recursive schema and an input deeper than the depth bound.
    json value = json::array();
    for (int i = 0; i < 300; ++i) value = json::array({value});
    CHECK(compiled(R"({"type": "array", "items": {"$ref": "#"}})")->validate(value).kind == Verdict::GAVE_UP);
}
