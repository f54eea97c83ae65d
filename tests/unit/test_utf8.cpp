// utf8_prefix: text is cut to a byte limit at a character boundary, never inside a multi-byte
// sequence, and invalid bytes cannot make it cut far short of the limit.
#include "utf8.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

using sluice::utf8_prefix;

namespace {

// One character of each UTF-8 length: 1, 2, 3 and 4 bytes.
constexpr std::string_view ONE = "a", TWO = "\xc3\xa9", THREE = "\xe2\x82\xac", FOUR = "\xf0\x9f\x98\x80";

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

TEST_CASE("text within the limit is kept whole") {
    CHECK(utf8_prefix("", 0) == "");
    CHECK(utf8_prefix("abc", 3) == "abc");
    CHECK(utf8_prefix(FOUR, 4) == FOUR);
    CHECK(utf8_prefix("abc", 0) == "");
    CHECK(utf8_prefix("abcdef", 4) == "abcd");
}

TEST_CASE("a character that does not fit whole is left out whole") {
    for (std::string_view character : {TWO, THREE, FOUR}) {
        const std::string text = "ab" + std::string(character) + "cd";
        for (std::size_t cut = 1; cut < character.size(); ++cut)
            CHECK(utf8_prefix(text, 2 + cut) == "ab");
        CHECK(utf8_prefix(text, 2 + character.size()) == "ab" + std::string(character));
    }
}

TEST_CASE("every limit over mixed text keeps the longest prefix that ends at a character boundary") {
    std::string text;
    for (int i = 0; i < 5; ++i) text += std::string(ONE) + std::string(FOUR) + std::string(TWO) + std::string(THREE);
    for (std::size_t limit = 0; limit <= text.size() + 1; ++limit) {
        const std::string_view kept = utf8_prefix(text, limit);
        REQUIRE(kept == std::string_view(text).substr(0, kept.size()));
        CHECK(kept.size() <= limit);
        CHECK(kept.size() + 4 > std::min(limit, text.size()));
        if (kept.size() < text.size()) CHECK_FALSE(is_continuation(text[kept.size()]));
    }
}

TEST_CASE("a run of stray continuation bytes is cut at most three bytes short of the limit") {
    const std::string garbage(1 << 20, '\x80');
    CHECK(utf8_prefix(garbage, 4096).size() == 4093);
    CHECK(utf8_prefix("ab\x80\x80\x80\x80\x80", 6) == "ab\x80");
}
