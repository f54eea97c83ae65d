// Compiling a JSON Schema into nodes (see json_schema.hpp): keywords, $ref resolution within
// the document, the bounds on its size, and the check for $ref cycles that never end.
#include "json_schema_node.hpp"

#include <algorithm>
#include <cmath>

namespace sluice::api::json_schema {

CompiledSchema::CompiledSchema() = default;
CompiledSchema::~CompiledSchema() = default;

namespace {

// Assertion keywords this validator does not implement: a schema using one does not compile.
constexpr std::string_view UNSUPPORTED[] = {
    "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies", "patternProperties",
    "propertyNames", "contains", "minContains", "maxContains", "unevaluatedItems", "unevaluatedProperties",
    "additionalItems", "$dynamicRef", "$recursiveRef"};

// Whether the in-place edges (anyOf, oneOf, allOf, not, $ref) of `nodes` hold a cycle: such a
// schema would apply itself to the same value forever.
bool in_place_cycle(const std::vector<Node>& nodes) {
    enum Mark : char { NEW, OPEN, DONE };
    std::vector<Mark> mark(nodes.size(), NEW);
    std::vector<std::pair<int, std::vector<int>>> stack;
    for (std::size_t start = 0; start < nodes.size(); ++start) {
        if (mark[start] != NEW) continue;
        mark[start] = OPEN;
        stack.emplace_back(static_cast<int>(start), nodes[start].in_place());
        while (!stack.empty()) {
            auto& [node, next] = stack.back();
            if (next.empty()) {
                mark[node] = DONE;
                stack.pop_back();
                continue;
            }
            const int child = next.back();
            next.pop_back();
            if (mark[child] == OPEN) return true;
            if (mark[child] == NEW) {
                mark[child] = OPEN;
                stack.emplace_back(child, nodes[child].in_place());
            }
        }
    }
    return false;
}

}  // namespace

// Builds the nodes of one schema document, a node per schema object reached from the root.
class Compiler {
public:
    Compiler(const json& root, CompiledSchema& out) : root_(root), out_(out) {}

    // The node of the schema at JSON Pointer `pointer` ("" is the root), compiled once.
    int at(const std::string& pointer) {
        if (auto it = by_pointer_.find(pointer); it != by_pointer_.end()) return it->second;
        const json* schema = nullptr;
        try {
            schema = &root_.at(json::json_pointer(pointer));
        } catch (const std::exception&) {
            return fail("$ref '#" + pointer + "' points at nothing");
        }
        return compile(*schema, pointer);
    }

    const std::string& error() const { return error_; }
    bool cyclic() const { return in_place_cycle(out_.nodes_); }

private:
    int fail(std::string why) {
        if (error_.empty()) error_ = std::move(why);
        return -1;
    }

    void note(const std::string& what) {
        if (out_.note_.find(what) == std::string::npos) out_.note_ += (out_.note_.empty() ? "" : "; ") + what;
    }

    static std::optional<std::uint64_t> count(const json& v) {
        if (!v.is_number_integer() || (v.is_number_integer() && !v.is_number_unsigned() && v.get<std::int64_t>() < 0))
            return std::nullopt;
        return v.get<std::uint64_t>();
    }

    int compile(const json& s, const std::string& pointer) {
        if (!error_.empty()) return -1;
        if (out_.nodes_.size() >= MAX_NODES) return fail("more than " + std::to_string(MAX_NODES) + " schemas");
        const int index = static_cast<int>(out_.nodes_.size());
        out_.nodes_.emplace_back();
        by_pointer_[pointer] = index;
        if (s.is_boolean()) {
            out_.nodes_[index].kind = s.get<bool>() ? Node::ACCEPT : Node::REJECT;
            return index;
        }
        if (!s.is_object()) return fail("the schema at '" + pointer + "' is not an object or a boolean");
        for (const auto& [key, value] : s.items()) {
            if (!keyword(index, key, value, pointer)) return -1;
        }
        return error_.empty() ? index : -1;
    }

    // One keyword of the schema object of node `index`; false (with error_) when unusable.
    bool keyword(int index, const std::string& key, const json& v, const std::string& pointer) {
        const std::string here = pointer + "/" + escape_token(key);
        const auto bad = [&](const char* what) { return fail("'" + here + "' must be " + what) >= 0; };
        const auto sub = [&](const json& schema, const std::string& at) { return compile(schema, at); };
        const auto subs = [&](std::vector<int> Node::*member) {
            if (!v.is_array() || v.empty()) return bad("a non-empty array of schemas");
            for (std::size_t i = 0; i < v.size(); ++i) {
                const int child = sub(v[i], here + "/" + std::to_string(i));
                if (child < 0) return false;
                (out_.nodes_[index].*member).push_back(child);
            }
            return true;
        };
        const auto counted = [&](std::optional<std::uint64_t> Node::*member) {
            const auto n = count(v);
            if (!n) return bad("a non-negative integer");
            out_.nodes_[index].*member = *n;
            return true;
        };
        const auto number = [&](std::optional<double> Node::*member) {
            if (!v.is_number()) return bad("a number");
            out_.nodes_[index].*member = v.get<double>();
            return true;
        };
        Node& node = out_.nodes_[index];
        if (key == "type") {
            static const std::map<std::string, unsigned> BITS = {
                {"null", T_NULL},     {"boolean", T_BOOLEAN}, {"object", T_OBJECT}, {"array", T_ARRAY},
                {"number", T_NUMBER}, {"integer", T_INTEGER}, {"string", T_STRING}};
            const json names = v.is_array() ? v : json::array({v});
            unsigned types = 0;
            for (const json& name : names) {
                const auto it = name.is_string() ? BITS.find(name.get<std::string>()) : BITS.end();
                if (it == BITS.end()) return bad("a type name or a list of them");
                types |= it->second;
            }
            node.types = types;
        } else if (key == "properties") {
            if (!v.is_object()) return bad("an object of schemas");
            for (const auto& [name, schema] : v.items()) {
                const int child = sub(schema, here + "/" + escape_token(name));
                if (child < 0) return false;
                out_.nodes_[index].properties[name] = child;
            }
        } else if (key == "required") {
            if (!v.is_array()) return bad("an array of strings");
            for (const json& name : v) {
                if (!name.is_string()) return bad("an array of strings");
                node.required.push_back(name.get<std::string>());
            }
        } else if (key == "additionalProperties" || key == "items" || key == "not") {
            if (key == "items" && v.is_array()) return subs(&Node::prefix_items);  // draft 7's tuple form
            const int child = sub(v, here);
            if (child < 0) return false;
            Node& n = out_.nodes_[index];
            (key == "items" ? n.items : key == "not" ? n.not_schema : n.additional) = child;
        } else if (key == "prefixItems") {
            return subs(&Node::prefix_items);
        } else if (key == "anyOf") {
            return subs(&Node::any_of);
        } else if (key == "oneOf") {
            return subs(&Node::one_of);
        } else if (key == "allOf") {
            return subs(&Node::all_of);
        } else if (key == "minItems") {
            return counted(&Node::min_items);
        } else if (key == "maxItems") {
            return counted(&Node::max_items);
        } else if (key == "minLength") {
            return counted(&Node::min_length);
        } else if (key == "maxLength") {
            return counted(&Node::max_length);
        } else if (key == "minProperties") {
            return counted(&Node::min_properties);
        } else if (key == "maxProperties") {
            return counted(&Node::max_properties);
        } else if (key == "minimum") {
            return number(&Node::minimum);
        } else if (key == "maximum") {
            return number(&Node::maximum);
        } else if (key == "exclusiveMinimum") {
            return number(&Node::exclusive_minimum);
        } else if (key == "exclusiveMaximum") {
            return number(&Node::exclusive_maximum);
        } else if (key == "multipleOf") {
            if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>()))
                return bad("a number above 0");
            node.multiple_of = v.get<double>();
        } else if (key == "uniqueItems") {
            if (!v.is_boolean()) return bad("a boolean");
            node.unique_items = v.get<bool>();
        } else if (key == "enum") {
            if (!v.is_array()) return bad("an array");
            node.enum_values = v.get<std::vector<json>>();
        } else if (key == "const") {
            node.const_value = v;
        } else if (key == "$ref") {
            if (!v.is_string() || !v.get<std::string>().starts_with("#"))
                return bad("a reference within the schema (\"#...\")");
            const int target = at(v.get<std::string>().substr(1));
            if (target < 0) return false;
            out_.nodes_[index].ref = target;
        } else if (key == "pattern") {
            if (!v.is_string()) return bad("a string");
            note("pattern is not checked by the api (the worker checks it)");
        } else if (std::find(std::begin(UNSUPPORTED), std::end(UNSUPPORTED), key) != std::end(UNSUPPORTED)) {
            return fail("keyword '" + key + "' (at '" + here + "') is not supported") >= 0;
        }
        // Anything else ($defs, title, description, default, examples, format, discriminator...)
        // is an annotation, or a store of schemas reached through $ref.
        return true;
    }

    const json& root_;
    CompiledSchema& out_;
    std::map<std::string, int> by_pointer_;
    std::string error_;
};

std::optional<json> parse_bounded(std::string_view text) {
    bool too_deep = false;
    json::parser_callback_t guard = [&too_deep](int depth, json::parse_event_t, json&) {
        if (depth > MAX_SCHEMA_DEPTH) too_deep = true;
        return !too_deep;
    };
    json doc = json::parse(text.begin(), text.end(), guard, /*allow_exceptions=*/false);
    if (too_deep || doc.is_discarded()) return std::nullopt;
    return doc;
}

std::variant<std::shared_ptr<const CompiledSchema>, std::string> compile(std::string_view text) {
    const std::optional<json> root = parse_bounded(text);
    if (!root) return std::string("not JSON (or nested deeper than ") + std::to_string(MAX_SCHEMA_DEPTH) + " levels)";
    auto out = std::make_shared<CompiledSchema>();
    Compiler compiler(*root, *out);
    if (compiler.at("") < 0 || !compiler.error().empty()) return compiler.error();
    if (compiler.cyclic()) return std::string("a $ref cycle applies the schema to the same value forever");
    return std::shared_ptr<const CompiledSchema>(std::move(out));
}

}  // namespace sluice::api::json_schema
