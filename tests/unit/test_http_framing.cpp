// Unit tests of request framing (api/http_framing.hpp), on headers read by Beast's own parser:
// what Beast 1.74 refuses by itself, and what framing_problem() adds, so that no request can
// frame its body one way for a proxy and another for the api.
#include "http_framing.hpp"

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace sluice::api;
namespace http = boost::beast::http;

namespace {

// What becomes of `head` (a request's header block): "beast" when Beast's parser refuses it,
// else framing_problem()'s answer, "" for none.
std::string verdict(const std::string& head) {
    http::request_parser<http::string_body> parser;
    boost::system::error_code ec;
    parser.put(boost::asio::buffer(head), ec);
    if (ec) return "beast";
    REQUIRE_MESSAGE(parser.is_header_done(), head);
    return std::string(framing_problem(parser.get()).value_or(""));
}

std::string request(const std::string& fields, const std::string& version = "1.1") {
    return "POST /v1/jobs HTTP/" + version + "\r\n" + fields + "\r\n";
}

}  // namespace

TEST_CASE("framing: sound requests pass") {
    for (const char* fields : {"Host: x\r\nContent-Length: 5\r\n", "Host: x\r\nTransfer-Encoding: chunked\r\n",
                               "Host: x\r\nTransfer-Encoding: Chunked\r\n",
                               "Host: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n", "Host: x\r\n"})
        CHECK_MESSAGE(verdict(request(fields)) == "", fields);
    CHECK(verdict(request("", "1.0")) == "");  // HTTP/1.0 needs no Host
    CHECK(verdict(request("Content-Length: 2\r\n", "1.0")) == "");
}

TEST_CASE("framing: what Beast refuses by itself") {
    for (const char* fields : {"Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: 5, 6\r\n",
                               "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                               "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                               "Content-Length: 5\r\nTransfer-Encoding: identity\r\n",
                               "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"})
        CHECK_MESSAGE(verdict(request("Host: x\r\n" + std::string(fields))) == "beast", fields);
}

TEST_CASE("framing: a Transfer-Encoding other than exactly chunked is refused") {
    const std::string only_chunked = "Transfer-Encoding must be exactly chunked: no other transfer coding is accepted";
    for (const char* coding : {"identity", "gzip", "chunked, gzip", "gzip, chunked", "chunked, chunked", "chunked;x=1",
                               "", "chunkedx"})
        CHECK_MESSAGE(verdict(request("Host: x\r\nTransfer-Encoding: " + std::string(coding) + "\r\n")) == only_chunked,
                      coding);
    CHECK(verdict(request("Host: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n")) == only_chunked);
    CHECK(verdict(request("Transfer-Encoding: chunked\r\n", "1.0")) ==
          "Transfer-Encoding is not allowed in an HTTP/1.0 request");
}

TEST_CASE("framing: Content-Length with Transfer-Encoding is refused, whatever the order and coding") {
    // Beast takes a Content-Length after a Transfer-Encoding other than chunked.
    const std::string both = "a request must not carry both Content-Length and Transfer-Encoding";
    CHECK(verdict(request("Host: x\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n")) == both);
    CHECK(verdict(request("Host: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 0\r\n")) == both);
}

TEST_CASE("framing: Host") {
    CHECK(verdict(request("Content-Length: 2\r\n")) == "an HTTP/1.1 request must carry Host");
    CHECK(verdict(request("Host: a\r\nHost: b\r\n")) == "a request must carry one Host, not several");
    CHECK(verdict(request("Host: a\r\nHost: a\r\n", "1.0")) == "a request must carry one Host, not several");
}
