// The compiled form of a JSON Schema that api/json_schema.cpp validates with and
// api/json_schema_compile.cpp builds: one Node per schema object, children by index. Internal
// to those two files. Immutable once built, so thread-safe to read.
#pragma once

#include "json_schema.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// A JSON Pointer reference token for `token`: '~' as "~0", '/' as "~1" (RFC 6901).
inline std::string escape_token(std::string_view token) {
    std::string out;
    for (char c : token) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

}  // namespace sluice::api::json_schema
