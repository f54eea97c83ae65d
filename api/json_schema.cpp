// Validating a value against a compiled JSON Schema (see json_schema.hpp).
#include "json_schema_node.hpp"

#include <algorithm>
#include <cmath>

namespace sluice::api::json_schema {
namespace {

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
    if (std::isfinite(d) && std::floor(d) == d && std::abs(d) < 1e15)
        return std::to_string(static_cast<std::int64_t>(d));
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

    // "expected {what} {limit}, got {got}"
    static std::string expected(std::string_view what, const std::string& limit, const std::string& got) {
        std::string text = "expected ";
        text += what;
        text += ' ';
        text += limit;
        text += ", got ";
        text += got;
        return text;
    }

    static std::string clipped(std::string text) {
        constexpr std::size_t MAX = 200;
        if (text.size() > MAX) text = text.substr(0, MAX) + "...";
        return text;
    }

    bool number(const Node& n, const json& v, Failure& failure) const {
        const double x = v.get<double>();
        if (n.minimum && !(x >= *n.minimum))
            return fail(failure, expected("at least", number_text(*n.minimum), number_text(x)));
        if (n.maximum && !(x <= *n.maximum))
            return fail(failure, expected("at most", number_text(*n.maximum), number_text(x)));
        if (n.exclusive_minimum && !(x > *n.exclusive_minimum))
            return fail(failure, expected("more than", number_text(*n.exclusive_minimum), number_text(x)));
        if (n.exclusive_maximum && !(x < *n.exclusive_maximum))
            return fail(failure, expected("less than", number_text(*n.exclusive_maximum), number_text(x)));
        if (n.multiple_of && !multiple_of(v, *n.multiple_of))
            return fail(failure, "expected a multiple of " + number_text(*n.multiple_of));
        return true;
    }

    bool string(const Node& n, const std::string& s, Failure& failure) const {
        if (!n.min_length && !n.max_length) return true;
        const std::size_t length = code_points(s);
        if (n.min_length && length < *n.min_length)
            return fail(failure, expected("a string of at least", std::to_string(*n.min_length) + " characters",
                                          std::to_string(length)));
        if (n.max_length && length > *n.max_length)
            return fail(failure, expected("a string of at most", std::to_string(*n.max_length) + " characters",
                                          std::to_string(length)));
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
            return fail(failure,
                        expected("at least", std::to_string(*n.min_items) + " items", std::to_string(v.size())));
        if (n.max_items && v.size() > *n.max_items)
            return fail(failure,
                        expected("at most", std::to_string(*n.max_items) + " items", std::to_string(v.size())));
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
            if (check(n.not_schema, v, depth + 1, ignored))
                return gave_up || fail(failure, "matches a schema it must not ('not')");
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

}  // namespace sluice::api::json_schema
