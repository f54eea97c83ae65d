// Cutting text to a byte limit without splitting a UTF-8 character, so what is kept stays valid
// UTF-8 when the text was (msgpack str fields and JSON strings must be). Pure and thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace sluice {

// Returns the longest prefix of `text` of at most `max_bytes` bytes that does not end inside a
// multi-byte UTF-8 sequence: `text` itself when it fits. Bytes that are not valid UTF-8 are
// counted as they are; a cut backs up at most three bytes (a sequence is four at the most), so a
// long run of stray continuation bytes is cut like any other text.
inline std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
    if (text.size() <= max_bytes) return text;
    auto continues = [&](std::size_t i) { return (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80; };
    std::size_t end = max_bytes;
    for (int backed = 0; backed < 3 && end > 0 && continues(end); ++backed) --end;
    return text.substr(0, end);
}

}  // namespace sluice
