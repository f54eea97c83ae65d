// The JSON Schema compiler and validator (see json_schema.hpp).
#include "json_schema.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>

namespace sluice::api::json_schema {

using json = nlohmann::json;

// Type bits: a schema's `type` is a set of these (0: any type).
enum : unsigned { T_NULL = 1, T_BOOLEAN = 2, T_OBJECT = 4, T_ARRAY = 8, T_NUMBER = 16, T_INTEGER = 32, T_STRING = 64 };

struct Node {
    enum Kind { SCHEMA, ACCEPT, REJECT } kind = SCHEMA;  // an object, or the boolean schemas
    unsigned types = 0;
    std::map<std::string, int> properties;
    std::vector<std::string> required;
    int additional = -1;
    std::optional<std::uint64_t> min_properties, max_properties;
    int items = -1;
    std::vector<int> prefix_items;
    std::optional<std::uint64_t> min_items, max_items;
    bool unique_items = false;
    std::optional<std::vector<json>> enum_values;
    std::optional<json> const_value;
    std::optional<std::uint64_t> min_length, max_length;
    std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum, multiple_of;
    std::vector<int> any_of, one_of, all_of;
    int not_schema = -1;
    int ref = -1;

    // The schemas applied to the same value (not to a part of it): a cycle of these never ends.
    std::vector<int> in_place() const {
        std::vector<int> out = any_of;
        out.insert(out.end(), one_of.begin(), one_of.end());
        out.insert(out.end(), all_of.begin(), all_of.end());
        if (not_schema >= 0) out.push_back(not_schema);
        if (ref >= 0) out.push_back(ref);
        return out;
    }
};

CompiledSchema::CompiledSchema() = default;
CompiledSchema::~CompiledSchema() = default;

namespace {

// Assertion keywords this validator does not implement: a schema using one does not compile.
constexpr std::string_view UNSUPPORTED[] = {
    "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies", "patternProperties",
    "propertyNames", "contains", "minContains", "maxContains", "unevaluatedItems", "unevaluatedProperties",
    "additionalItems", "$dynamicRef", "$recursiveRef"};

std::string escape_token(std::string_view token) {
    std::string out;
    for (char c : token) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

std::string type_list(unsigned types) {
    static constexpr std::pair<unsigned, const char*> NAMES[] = {
        {T_NULL, "null"},     {T_BOOLEAN, "boolean"}, {T_OBJECT, "object"}, {T_ARRAY, "array"},
        {T_NUMBER, "number"}, {T_INTEGER, "integer"}, {T_STRING, "string"}};
    std::string out;
    for (const auto& [bit, name] : NAMES) {
        if ((types & bit) == 0) continue;
        if (!out.empty()) out += " or ";
        out += name;
    }
    return out;
}

// Whether `v` has a whole value (3, 3.0, 1e3).
bool integral(const json& v) {
    if (v.is_number_integer()) return true;
    if (!v.is_number_float()) return false;
    const double d = v.get<double>();
    return std::isfinite(d) && std::floor(d) == d;
}

unsigned type_of(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return T_NULL;
        case json::value_t::boolean: return T_BOOLEAN;
        case json::value_t::object: return T_OBJECT;
        case json::value_t::array: return T_ARRAY;
        case json::value_t::string: return T_STRING;
        // An integer is written as one: 3.0 is a number, as the api's own options and a pydantic
        // model in strict mode (the worker's check) take it.
        default: return v.is_number_integer() ? (T_NUMBER | T_INTEGER) : T_NUMBER;
    }
}

std::string_view type_name(const json& v) {
    const unsigned t = type_of(v);
    if (t & T_INTEGER) return "integer";
    switch (t) {
        case T_NULL: return "null";
        case T_BOOLEAN: return "boolean";
        case T_OBJECT: return "object";
        case T_ARRAY: return "array";
        case T_STRING: return "string";
        default: return "number";
    }
}

std::string number_text(double d) {
    if (std::isfinite(d) && std::floor(d) == d && std::abs(d) < 1e15) return std::to_string(static_cast<std::int64_t>(d));
    return json(d).dump();
}

std::size_t code_points(const std::string& s) {
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool multiple_of(const json& v, double m) {
    const double x = v.get<double>();
    constexpr double EXACT = 9007199254740992.0;  // 2^53: integers below it are exact as doubles
    if (integral(v) && std::abs(x) < EXACT && std::floor(m) == m && m < EXACT)
        return static_cast<std::int64_t>(x) % static_cast<std::int64_t>(m) == 0;
    const double q = x / m;
    return std::isfinite(q) && std::abs(q - std::round(q)) <= 1e-9 * std::max(1.0, std::abs(q));
}

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

namespace {

// One validation: the path to the value being checked, and the bounds' counters.
class Run {
public:
    explicit Run(const std::vector<Node>& nodes) : nodes_(nodes) {}

    // Whether `v` matches node `index`; on false, *failure says why. A bound running out
    // sets gave_up and answers true, so the validation ends quickly.
    bool check(int index, const json& v, int depth, Failure& failure) {
        if (gave_up || ++steps_ > MAX_VALIDATION_STEPS || depth > MAX_VALIDATION_DEPTH) {
            gave_up = true;
            return true;
        }
        const Node& n = nodes_[index];
        if (n.kind == Node::ACCEPT) return true;
        if (n.kind == Node::REJECT) return fail(failure, "no value is allowed here");
        const unsigned type = type_of(v);
        if (n.types != 0 && (n.types & type) == 0)
            return fail(failure, "expected " + type_list(n.types) + ", got " + std::string(type_name(v)));
        if (n.enum_values && std::find(n.enum_values->begin(), n.enum_values->end(), v) == n.enum_values->end())
            return fail(failure, "expected one of " + clipped(json(*n.enum_values).dump()));
        if (n.const_value && !(*n.const_value == v)) return fail(failure, "expected " + clipped(n.const_value->dump()));
        if ((type & T_NUMBER) && !number(n, v, failure)) return false;
        if (type == T_STRING && !string(n, v.get_ref<const std::string&>(), failure)) return false;
        if (type == T_OBJECT && !object(n, v, depth, failure)) return false;
        if (type == T_ARRAY && !array(n, v, depth, failure)) return false;
        return in_place(n, v, depth, failure);
    }

    bool gave_up = false;

private:
    bool fail(Failure& failure, std::string message) const {
        failure.path.clear();
        for (const std::string& token : path_) {
            failure.path += '/';
            failure.path += escape_token(token);
        }
        failure.message = std::move(message);
        return false;
    }

    static std::string clipped(std::string text) {
        constexpr std::size_t MAX = 200;
        if (text.size() > MAX) text = text.substr(0, MAX) + "...";
        return text;
    }

    bool number(const Node& n, const json& v, Failure& failure) const {
        const double x = v.get<double>();
        if (n.minimum && !(x >= *n.minimum)) return fail(failure, "expected at least " + number_text(*n.minimum) + ", got " + number_text(x));
        if (n.maximum && !(x <= *n.maximum)) return fail(failure, "expected at most " + number_text(*n.maximum) + ", got " + number_text(x));
        if (n.exclusive_minimum && !(x > *n.exclusive_minimum))
            return fail(failure, "expected more than " + number_text(*n.exclusive_minimum) + ", got " + number_text(x));
        if (n.exclusive_maximum && !(x < *n.exclusive_maximum))
            return fail(failure, "expected less than " + number_text(*n.exclusive_maximum) + ", got " + number_text(x));
        if (n.multiple_of && !multiple_of(v, *n.multiple_of))
            return fail(failure, "expected a multiple of " + number_text(*n.multiple_of));
        return true;
    }

    bool string(const Node& n, const std::string& s, Failure& failure) const {
        if (!n.min_length && !n.max_length) return true;
        const std::size_t length = code_points(s);
        if (n.min_length && length < *n.min_length)
            return fail(failure, "expected a string of at least " + std::to_string(*n.min_length) + " characters, got " + std::to_string(length));
        if (n.max_length && length > *n.max_length)
            return fail(failure, "expected a string of at most " + std::to_string(*n.max_length) + " characters, got " + std::to_string(length));
        return true;
    }

    bool object(const Node& n, const json& v, int depth, Failure& failure) {
        if (n.min_properties && v.size() < *n.min_properties)
            return fail(failure, "expected at least " + std::to_string(*n.min_properties) + " properties");
        if (n.max_properties && v.size() > *n.max_properties)
            return fail(failure, "expected at most " + std::to_string(*n.max_properties) + " properties");
        for (const std::string& name : n.required) {
            if (v.contains(name)) continue;
            path_.push_back(name);
            fail(failure, "required property '" + name + "' is missing");
            path_.pop_back();
            return false;
        }
        for (const auto& [key, value] : v.items()) {
            const auto declared = n.properties.find(key);
            const int child = declared != n.properties.end() ? declared->second : n.additional;
            if (child < 0) continue;
            path_.push_back(key);
            const bool ok = nodes_[child].kind == Node::REJECT
                                ? fail(failure, "property '" + key + "' is not allowed")
                                : check(child, value, depth + 1, failure);
            path_.pop_back();
            if (!ok) return false;
        }
        return true;
    }

    bool array(const Node& n, const json& v, int depth, Failure& failure) {
        if (n.min_items && v.size() < *n.min_items)
            return fail(failure, "expected at least " + std::to_string(*n.min_items) + " items, got " + std::to_string(v.size()));
        if (n.max_items && v.size() > *n.max_items)
            return fail(failure, "expected at most " + std::to_string(*n.max_items) + " items, got " + std::to_string(v.size()));
        for (std::size_t i = 0; i < v.size(); ++i) {
            const int child = i < n.prefix_items.size() ? n.prefix_items[i] : n.items;
            if (child < 0) continue;
            path_.push_back(std::to_string(i));
            const bool ok = check(child, v[i], depth + 1, failure);
            path_.pop_back();
            if (!ok) return false;
        }
        if (n.unique_items) {
            std::vector<const json*> sorted;
            for (const json& item : v) sorted.push_back(&item);
            std::sort(sorted.begin(), sorted.end(), [](const json* a, const json* b) { return *a < *b; });
            for (std::size_t i = 1; i < sorted.size(); ++i)
                if (*sorted[i - 1] == *sorted[i]) return fail(failure, "expected items that are all different");
        }
        return true;
    }

    bool in_place(const Node& n, const json& v, int depth, Failure& failure) {
        for (int child : n.all_of)
            if (!check(child, v, depth + 1, failure)) return false;
        if (n.ref >= 0 && !check(n.ref, v, depth + 1, failure)) return false;
        if (n.not_schema >= 0) {
            Failure ignored;
            if (check(n.not_schema, v, depth + 1, ignored)) return gave_up || fail(failure, "matches a schema it must not ('not')");
        }
        if (!n.any_of.empty() && !alternatives(n.any_of, v, depth, failure, false)) return false;
        if (!n.one_of.empty() && !alternatives(n.one_of, v, depth, failure, true)) return false;
        return true;
    }

    // anyOf (exactly_one false) or oneOf. A failure is the most specific one when a branch got
    // further into the value than the others (the branch meant, most likely); else a list.
    bool alternatives(const std::vector<int>& branches, const json& v, int depth, Failure& failure, bool exactly_one) {
        std::size_t matched = 0;
        std::vector<Failure> failures;
        for (int child : branches) {
            Failure f;
            if (check(child, v, depth + 1, f)) {
                if (++matched > 1 && exactly_one)
                    return gave_up || fail(failure, "matches more than one of the 'oneOf' schemas");
                if (!exactly_one) return true;
            } else {
                failures.push_back(std::move(f));
            }
        }
        if (matched > 0) return true;
        Failure here;
        fail(here, "");
        const auto deepest = std::max_element(failures.begin(), failures.end(), [](const Failure& a, const Failure& b) {
            return a.path.size() < b.path.size();
        });
        if (deepest->path.size() > here.path.size()) {
            failure = *deepest;
            return false;
        }
        std::string message = "expected one of these: ";
        for (std::size_t i = 0; i < failures.size(); ++i)
            message += (i ? "; " : "") + failures[i].message;
        return fail(failure, clipped(message));
    }

    const std::vector<Node>& nodes_;
    std::vector<std::string> path_;
    std::size_t steps_ = 0;
};

}  // namespace

Verdict CompiledSchema::validate(const json& value) const {
    Run run(nodes_);
    Verdict verdict;
    const bool ok = run.check(0, value, 0, verdict.failure);
    verdict.kind = run.gave_up ? Verdict::GAVE_UP : ok ? Verdict::VALID : Verdict::INVALID;
    return verdict;
}

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
