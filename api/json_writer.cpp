// JSON text writer (see json_writer.hpp).
#include "json_writer.hpp"

#include <charconv>
#include <cmath>

namespace sluice::api {
namespace {

constexpr std::string_view REPLACEMENT = "\xef\xbf\xbd";  // U+FFFD in UTF-8

bool in(unsigned char c, unsigned char low, unsigned char high) { return c >= low && c <= high; }

// Length of the valid UTF-8 sequence at the start of `s`, or 0 when it is invalid; then
// `invalid` is how many bytes the replacement stands for (the maximal invalid subpart, at
// least 1), as Unicode recommends and nlohmann::json does.
std::size_t utf8_sequence(std::string_view s, std::size_t& invalid) {
    const auto lead = static_cast<unsigned char>(s[0]);
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xbf;  // allowed range of the second byte
    if (lead < 0x80) return 1;
    if (in(lead, 0xc2, 0xdf)) {
        length = 2;
    } else if (in(lead, 0xe0, 0xef)) {
        length = 3;
        if (lead == 0xe0) low = 0xa0;   // no overlong forms
        if (lead == 0xed) high = 0x9f;  // no surrogates
    } else if (in(lead, 0xf0, 0xf4)) {
        length = 4;
        if (lead == 0xf0) low = 0x90;   // no overlong forms
        if (lead == 0xf4) high = 0x8f;  // nothing past U+10FFFF
    } else {
        invalid = 1;
        return 0;
    }
    for (std::size_t i = 1; i < length; ++i) {
        const bool ok = i < s.size() &&
                        (i == 1 ? in(static_cast<unsigned char>(s[i]), low, high)
                                : in(static_cast<unsigned char>(s[i]), 0x80, 0xbf));
        if (!ok) {
            invalid = i;
            return 0;
        }
    }
    return length;
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
    static constexpr char HEX[] = "0123456789abcdef";
    out += '"';
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            std::size_t end = i + 1;
            while (end < text.size()) {
                const auto d = static_cast<unsigned char>(text[end]);
                if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
                ++end;
            }
            out.append(text.substr(i, end - i));
            i = end;
            continue;
        }
        switch (c) {
            case '"': out += "\\\""; ++i; continue;
            case '\\': out += "\\\\"; ++i; continue;
            case '\b': out += "\\b"; ++i; continue;
            case '\f': out += "\\f"; ++i; continue;
            case '\n': out += "\\n"; ++i; continue;
            case '\r': out += "\\r"; ++i; continue;
            case '\t': out += "\\t"; ++i; continue;
            default: break;
        }
        if (c < 0x20) {
            out += "\\u00";
            out += HEX[c >> 4];
            out += HEX[c & 0x0f];
            ++i;
            continue;
        }
        std::size_t invalid = 0;
        const std::size_t length = utf8_sequence(text.substr(i), invalid);
        if (length == 0) {
            out += REPLACEMENT;
            i += invalid;
        } else {
            out.append(text.substr(i, length));
            i += length;
        }
    }
    out += '"';
}

void JsonWriter::before_value() {
    if (need_comma_) out_ += ',';
    need_comma_ = true;
}

JsonWriter& JsonWriter::open(char bracket) {
    before_value();
    out_ += bracket;
    need_comma_ = false;
    return *this;
}

JsonWriter& JsonWriter::close(char bracket) {
    out_ += bracket;
    need_comma_ = true;
    return *this;
}

JsonWriter& JsonWriter::begin_object() { return open('{'); }
JsonWriter& JsonWriter::end_object() { return close('}'); }
JsonWriter& JsonWriter::begin_array() { return open('['); }
JsonWriter& JsonWriter::end_array() { return close(']'); }

JsonWriter& JsonWriter::key(std::string_view name) {
    before_value();
    append_json_string(out_, name);
    out_ += ':';
    need_comma_ = false;
    return *this;
}

JsonWriter& JsonWriter::string(std::string_view text) {
    before_value();
    append_json_string(out_, text);
    return *this;
}

JsonWriter& JsonWriter::integer(std::int64_t value) {
    before_value();
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    out_.append(digits, end);
    return *this;
}

JsonWriter& JsonWriter::number(double value) {
    if (!std::isfinite(value)) return null();
    before_value();
    char digits[32];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    out_.append(digits, end);
    return *this;
}

JsonWriter& JsonWriter::null() {
    before_value();
    out_ += "null";
    return *this;
}

JsonWriter& JsonWriter::raw(std::string_view json_text) {
    before_value();
    out_ += json_text;
    return *this;
}

std::string JsonWriter::take() {
    std::string text = std::move(out_);
    out_.clear();
    need_comma_ = false;
    return text;
}

}  // namespace sluice::api
