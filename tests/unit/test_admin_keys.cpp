// Unit tests of the key requests of POST /v1/admin/keys (api/admin_keys.hpp): what a key's name
// may be.
#include "admin_keys.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace sluice::api;

namespace {

// Whether a key request for tenant acme, role member, named by the JSON string `name`, is taken.
bool takes(const std::string& name) {
    const auto parsed = parse_key_request(R"({"tenant": "acme", "role": "member", "name": )" + name + "}");
    return std::holds_alternative<KeyRequest>(parsed);
}

}  // namespace

TEST_CASE("key names: printable text in any script, 1..128 bytes, no control characters") {
    for (const char* name : {R"("acme backend")", R"("Café Zürich")", R"("東京 app")", R"("\u00a0 no-break")",
                             R"("😀")", R"("~")"}) {
        CHECK_MESSAGE(takes(name), name);
    }
    const auto parsed = parse_key_request(R"({"tenant": "acme", "role": "member", "name": "Caf\u00e9"})");
    CHECK(std::get<KeyRequest>(parsed).name == "Caf\xc3\xa9");
    CHECK(takes('"' + std::string(MAX_KEY_NAME, 'x') + '"'));
    std::string two_byte_128;
    for (int i = 0; i < 64; ++i) two_byte_128 += "\xc3\xa9";  // 64 two-byte characters: 128 bytes
    CHECK(takes('"' + two_byte_128 + '"'));
    CHECK_FALSE(takes('"' + two_byte_128 + "x\""));
    for (const char* name : {R"("")", R"("tab\there")", R"("line\nbreak")", R"("\u0000")", R"("del\u007f")",
                             R"("c1\u0085")", R"("c1\u009f")"}) {
        CHECK_MESSAGE(!takes(name), name);
    }
}
