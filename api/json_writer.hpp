// Writes JSON text straight into a string, for the api's response bodies: a job body is read on
// every status lookup, and building a document first (a map node and strings per field) then
// serialising it cost more allocations than the rest of the request.
// Output matches nlohmann::json's compact dump with error_handler_t::replace: invalid UTF-8 is
// replaced by U+FFFD (per maximal invalid subsequence), control characters are escaped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::api {

class JsonWriter {
public:
    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array();
    JsonWriter& end_array();
    // An object member's name; the next call writes its value.
    JsonWriter& key(std::string_view name);
    JsonWriter& string(std::string_view text);
    JsonWriter& integer(std::int64_t value);
    // Shortest text that reads back as `value`; null for NaN and infinities (as nlohmann::json).
    JsonWriter& number(double value);
    JsonWriter& null();
    // A value that already is JSON text (the caller vouches for it).
    JsonWriter& raw(std::string_view json_text);

    // The text written so far; the writer is empty afterwards.
    std::string take();
    // How many bytes of text are written so far.
    std::size_t size() const { return out_.size(); }

private:
    void before_value();
    JsonWriter& open(char bracket);
    JsonWriter& close(char bracket);

    std::string out_;
    bool need_comma_ = false;  // a value was written at this level: the next one needs a comma
};

// Appends `text` as a JSON string literal (quotes included) to `out`.
void append_json_string(std::string& out, std::string_view text);

}  // namespace sluice::api
