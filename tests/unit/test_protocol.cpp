// Decodes every shared test vector (schemas/vectors/messages.json) into its C++ struct and
// re-encodes it byte for byte; the Python suite does the same, so the two codecs cannot drift.
#include "protocol.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace sluice::proto;
using nlohmann::json;

namespace {

std::string from_hex(const std::string& hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return out;
}

std::string to_hex(std::string_view bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

// A msgpack value as the vectors write it: bin as lowercase hex, everything else as itself.
json to_json(const msgpack::object& obj) {
    switch (obj.type) {
        case msgpack::type::NIL: return nullptr;
        case msgpack::type::BOOLEAN: return obj.via.boolean;
        case msgpack::type::POSITIVE_INTEGER: return obj.via.u64;
        case msgpack::type::NEGATIVE_INTEGER: return obj.via.i64;
        case msgpack::type::FLOAT64:
        case msgpack::type::FLOAT32: return obj.via.f64;
        case msgpack::type::STR: return std::string(obj.via.str.ptr, obj.via.str.size);
        case msgpack::type::BIN: return to_hex(std::string_view(obj.via.bin.ptr, obj.via.bin.size));
        case msgpack::type::ARRAY: {
            json out = json::array();
            for (uint32_t i = 0; i < obj.via.array.size; ++i) out.push_back(to_json(obj.via.array.ptr[i]));
            return out;
        }
        default: return "unsupported";
    }
}

template <class T>
void roundtrip(const std::string& body) {
    auto decoded = decode_body<T>(body);
    REQUIRE(decoded.has_value());
    CHECK(to_hex(encode_body(*decoded)) == to_hex(body));
}

void check_vector(const json& vector) {
    const std::string name = vector.at("name");
    const std::string body = from_hex(vector.at("body_hex"));
    CAPTURE(name);
    CAPTURE(vector.value("case", ""));
    REQUIRE(command_name(vector.at("command").get<uint8_t>()) != nullptr);
    CHECK(std::string(command_name(vector.at("command").get<uint8_t>())) == name);

    msgpack::object_handle handle = msgpack::unpack(body.data(), body.size());
    CHECK(to_json(handle.get()) == vector.at("fields"));

    if (name == "SUBMIT") roundtrip<Submit>(body);
    else if (name == "FLOW") roundtrip<Flow>(body);
    else if (name == "SPAWN") roundtrip<Spawn>(body);
    else if (name == "CANCEL") roundtrip<Cancel>(body);
    else if (name == "RETRY") roundtrip<Retry>(body);
    else if (name == "PING") roundtrip<Ping>(body);
    else if (name == "REPLY") roundtrip<Reply>(body);
    else if (name == "READY") roundtrip<Ready>(body);
    else if (name == "JOB") roundtrip<Job>(body);
    else if (name == "PROGRESS") roundtrip<Progress>(body);
    else if (name == "CHUNK") roundtrip<Chunk>(body);
    else if (name == "RESULT") roundtrip<Result>(body);
    else if (name == "FAILURE") roundtrip<Failure>(body);
    else if (name == "CANCEL_JOB") roundtrip<CancelJob>(body);
    else if (name == "CANCELED") roundtrip<Canceled>(body);
    else if (name == "HEARTBEAT") roundtrip<Heartbeat>(body);
    else if (name == "DISCONNECT") roundtrip<Disconnect>(body);
    else if (name == "RATE_LIMITED") roundtrip<RateLimited>(body);
    else FAIL("vector for a message the C++ side does not know: " << name);
}

}  // namespace

TEST_CASE("every shared vector decodes and re-encodes byte for byte") {
    std::ifstream file(SLUICE_SCHEMAS_DIR "/vectors/messages.json");
    REQUIRE(file.good());
    const json vectors = json::parse(file);
    REQUIRE(vectors.size() >= 18);
    std::set<std::string> seen;
    for (const json& vector : vectors) {
        check_vector(vector);
        seen.insert(vector.at("name").get<std::string>());
    }
    CHECK(seen.size() == 18);
}

TEST_CASE("every command in messages.json has a C++ name") {
    std::ifstream file(SLUICE_SCHEMAS_DIR "/messages.json");
    const json spec = json::parse(file);
    for (const json& message : spec.at("messages")) {
        const char* name = command_name(message.at("id").get<uint8_t>());
        REQUIRE(name != nullptr);
        CHECK(std::string(name) == message.at("name").get<std::string>());
    }
    CHECK(command_name(0) == nullptr);
    CHECK(command_name(200) == nullptr);
}

TEST_CASE("malformed bodies decode to nullopt, never throw") {
    const std::string good =
        encode_body(Submit{7, "id", "default", "echo", {'\xc0'}, 1, 3, 60, "", "", "", 0, "", 0, 0, 0, 0, "", {}, ""});
    CHECK(decode_body<Submit>(good).has_value());
    CHECK_FALSE(decode_body<Submit>(good.substr(0, good.size() - 1)).has_value());  // truncated
    CHECK_FALSE(decode_body<Submit>(good + "x").has_value());                       // trailing bytes
    CHECK_FALSE(decode_body<Submit>("").has_value());
    CHECK_FALSE(decode_body<Submit>("\x81\xa1x\x01").has_value());  // a map, not an array
    // A string where the request id belongs.
    CHECK_FALSE(decode_body<Submit>(encode_body(Chunk{"job", 1, "text"})).has_value());
}

TEST_CASE("a body missing trailing fields is refused, not filled with defaults") {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> packer(buffer);
    packer.pack_array(1);
    packer.pack(std::string("job-1"));
    CHECK_FALSE(decode_body<Canceled>(std::string_view(buffer.data(), buffer.size())).has_value());
    CHECK_FALSE(decode_body<Ping>("\x90").has_value());  // an empty array
    CHECK(decode_body<Heartbeat>("\x90").has_value());   // which is all a HEARTBEAT holds
}

TEST_CASE("a newer peer's extra trailing fields are ignored") {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> packer(buffer);
    packer.pack_array(3);
    packer.pack(std::string("job-1"));
    packer.pack(uint32_t{2});
    packer.pack(std::string("future field"));
    auto msg = decode_body<Canceled>(std::string_view(buffer.data(), buffer.size()));
    REQUIRE(msg.has_value());
    CHECK(msg->job_id == "job-1");
    CHECK(msg->attempt == 2);
}

TEST_CASE("a body claiming more elements than it has bytes is refused without allocating for them") {
    CHECK_FALSE(decode_body<Submit>(std::string("\xdd\xff\xff\xff\xff", 5)).has_value());  // array32
    CHECK_FALSE(decode_body<Ready>(std::string("\x94\xa1x\xa1y\xdd\xff\xff\xff\xf0\x01", 11)).has_value());
    CHECK_FALSE(decode_body<Submit>(std::string("\xdf\xdf\xdf\xdf\xdf\x05", 6)).has_value());  // map32
    std::string deep(40, '\x91');  // arrays nested deeper than any message
    deep += '\x01';
    CHECK_FALSE(decode_body<Ping>(deep).has_value());
}
