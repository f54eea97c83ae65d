// Round trip of the hand-written HTTP output (api/http_wire.hpp): everything it writes is
// read back with Beast's own parser, which must accept it and find the same status, headers,
// body and framing. Also the exact bytes of the common heads, so a change is deliberate.
#include "http_wire.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/dynamic_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/core/buffers_to_string.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace sluice::api;
namespace http = boost::beast::http;

namespace {

const std::string ID = "0b7c1f0e-2d4e-4a7b-9c1d-3e5f7a9b1c2d";

// Parses `wire` as one whole response with Beast; fails the test unless it takes every byte.
http::response<http::string_body> parse(const std::string& wire) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    boost::system::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(wire), ec);
    // A response framed by closing the connection ends at EOF.
    if (!ec && !parser.is_done()) parser.put_eof(ec);
    REQUIRE_MESSAGE(!ec, ec.message() << " in " << wire);
    CHECK(parser.is_done());
    CHECK(used == wire.size());
    return parser.release();
}

}  // namespace

TEST_CASE("response heads: exact bytes") {
    HttpResult accepted;
    accepted.status = 202;
    accepted.headers.emplace_back("Location", "/v1/jobs/" + ID);
    accepted.body = "{}";
    CHECK(response_head(accepted, 11, true) ==
          "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nLocation: /v1/jobs/" + ID +
              "\r\nContent-Length: 2\r\n\r\n");
    CHECK(response_head(accepted, 11, false).find("\r\nConnection: close\r\n\r\n") != std::string::npos);
    HttpResult missing;
    missing.status = 404;
    // HTTP/1.0 closes unless asked to keep the connection.
    const std::string old = response_head(missing, 10, true);
    CHECK(old.rfind("HTTP/1.0 404 Not Found\r\n", 0) == 0);
    CHECK(old.find("\r\nConnection: keep-alive\r\n") != std::string::npos);
    CHECK(response_head(missing, 10, false).find("Connection") == std::string::npos);
    HttpResult odd;
    odd.status = 418;
    CHECK(response_head(odd, 11, true).rfind("HTTP/1.1 418 \r\n", 0) == 0);
}

TEST_CASE("response heads read back by Beast") {
    for (int status : {200, 202, 400, 404, 405, 409, 413, 418, 422, 429, 431, 500, 502, 503, 504}) {
        for (unsigned version : {10u, 11u}) {
            for (bool keep_alive : {true, false}) {
                HttpResult r;
                r.status = status;
                r.headers.emplace_back("Retry-After", "1");
                r.headers.emplace_back("Allow", "GET, DELETE");
                r.body = R"({"error":{"code":"x","message":"\u00e9 \r\n"}})";
                const auto parsed = parse(response_head(r, version, keep_alive) + r.body);
                CAPTURE(status);
                CAPTURE(version);
                CAPTURE(keep_alive);
                CHECK(parsed.result_int() == static_cast<unsigned>(status));
                CHECK(parsed.version() == version);
                // Beast fills in a reason of its own where the status line has none (418).
                if (!reason_phrase(status).empty())
                    CHECK(std::string(parsed.reason()) == std::string(reason_phrase(status)));
                CHECK(parsed.keep_alive() == keep_alive);
                CHECK(parsed[http::field::content_type] == "application/json");
                CHECK(parsed["Retry-After"] == "1");
                CHECK(parsed[http::field::allow] == "GET, DELETE");
                CHECK(parsed.body() == r.body);
            }
        }
    }
}

TEST_CASE("an SSE stream read back by Beast: chunked, and closed by the server for HTTP/1.0") {
    const std::string events[] = {"id: 1\nevent: queued\ndata: {}\n\n", ": keep-alive\n\n",
                                  std::string(70000, 'x') + "\n\n"};
    std::string body;
    std::string wire = sse_head(true);
    for (const auto& e : events) {
        wire += chunk(e);
        body += e;
    }
    wire += LAST_CHUNK;
    const auto parsed = parse(wire);
    CHECK(parsed.result_int() == 200);
    CHECK(parsed.chunked());
    CHECK(parsed.keep_alive());
    CHECK(parsed[http::field::content_type] == "text/event-stream");
    CHECK(parsed[http::field::cache_control] == "no-cache");
    CHECK(parsed.body() == body);

    const auto raw = parse(sse_head(false) + body);
    CHECK_FALSE(raw.chunked());
    CHECK_FALSE(raw.keep_alive());
    CHECK(raw.body() == body);
}

TEST_CASE("chunk framing") {
    CHECK(chunk("hello") == "5\r\nhello\r\n");
    CHECK(chunk(std::string(255, 'a')).rfind("ff\r\n", 0) == 0);
    CHECK(std::string(LAST_CHUNK) == "0\r\n\r\n");
}
