// Unit tests of api/json_writer.hpp: structure and commas, and string escaping that matches
// nlohmann::json's dump (error_handler_t::replace) byte for byte, invalid UTF-8 included.
#include "json_writer.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <random>

using namespace sluice::api;
using json = nlohmann::json;

namespace {
std::string nlohmann_string(const std::string& text) {
    return json(text).dump(-1, ' ', false, json::error_handler_t::replace);
}
std::string hex(const std::string& text) {
    static constexpr char DIGITS[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : text) (out += DIGITS[c >> 4]) += DIGITS[c & 0x0f];
    return out;
}
std::string ours(std::string_view text) {
    std::string out;
    append_json_string(out, text);
    return out;
}
}  // namespace

TEST_CASE("objects, arrays and commas") {
    JsonWriter w;
    w.begin_object().key("id").string("a").key("n").integer(-42).key("none").null();
    w.key("list").begin_array().integer(1).string("x").begin_object().end_object().begin_array().end_array().end_array();
    w.key("raw").raw("{\"k\":[true]}").key("empty").begin_object().end_object().end_object();
    const std::string text = w.take();
    CHECK(text == R"({"id":"a","n":-42,"none":null,"list":[1,"x",{},[]],"raw":{"k":[true]},"empty":{}})");
    CHECK(json::parse(text)["list"][1] == "x");
    CHECK(w.take().empty());
    w.begin_array().integer(INT64_MIN).integer(INT64_MAX).end_array();
    CHECK(w.take() == "[-9223372036854775808,9223372036854775807]");
}

TEST_CASE("strings are escaped as nlohmann::json escapes them") {
    const std::vector<std::string> cases = {
        "", "plain", "quote \" backslash \\ slash /", "\b\f\n\r\t", std::string("\x00\x01\x1f\x7f", 4),
        "héllo wörld ✓ 𝄞", "bad \xff byte", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
        "\xf0\x9f\x98", "\xe2\x82", "\xe2\x82x", "\xc3", "x\xc3", "\xf5\x80", "\x80\x80",
        "\xf0\x9f\x98\x80\xf0\x9f", "\xef\xbf\xbd", "\xed\x9f\xbf", "\xee\x80\x80", "\xf0\x90\x80\x80",
        "\xf4\x8f\xbf\xbf", "\xc2\x80", "\xdf\xbf", "\xe1\x80", "\xe1\xc0\x80"};
    for (const auto& text : cases) CHECK_MESSAGE(ours(text) == nlohmann_string(text), hex(text));

    // Random byte strings, biased towards UTF-8 lead and continuation bytes.
    std::mt19937 rng(12345);
    const unsigned char alphabet[] = {'a', '"', '\\', 0x01, 0x1f, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
                                      0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf4,
                                      0xf5, 0xff};
    std::uniform_int_distribution<std::size_t> pick(0, sizeof alphabet - 1), size(0, 12);
    for (int round = 0; round < 20000; ++round) {
        std::string text;
        const std::size_t n = size(rng);
        for (std::size_t i = 0; i < n; ++i) text += static_cast<char>(alphabet[pick(rng)]);
        REQUIRE_MESSAGE(ours(text) == nlohmann_string(text), hex(text));
    }
}
