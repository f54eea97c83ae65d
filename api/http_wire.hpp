// The bytes of every HTTP answer sluice-api writes, written by hand: response heads, reason
// phrases, chunked framing and the head of an SSE stream. Beast's serializer did the same
// work measurably slower (bench/RESULTS.md: status lookups 34k -> 45k/s when this replaced
// it), so only this module knows the wire format of responses; tests/unit/test_http_wire.cpp
// reads everything it writes back with Beast's parser. Pure and thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::api {

// A plain HTTP answer with a JSON body: status, extra headers, body.
struct HttpResult {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string_view content_type = "application/json";  // a literal: it outlives the result
};

// The reason phrase of `status`, or "" for a status without one here (it is optional).
std::string_view reason_phrase(int status);

// The status line and headers of `result` as they go on the wire, blank line included:
// Content-Type (JSON), its extra headers, Content-Length, and Connection where `keep_alive`
// differs from the default of HTTP `version` (10 or 11; the status line carries it too).
std::string response_head(const HttpResult& result, unsigned version, bool keep_alive);

// The head of a 200 text/event-stream response. HTTP/1.1 (`chunked`): the events follow as
// chunks and the connection may carry on after the last one. HTTP/1.0: the events follow
// raw and the connection closes after the stream.
std::string sse_head(bool chunked, std::string_view extra_header_lines = {});

// `data` framed as one chunk of a chunked body ("{hex size}\r\n{data}\r\n").
std::string chunk(std::string_view data);

// The last chunk, which ends a chunked body (no trailers).
inline constexpr std::string_view LAST_CHUNK = "0\r\n\r\n";

}  // namespace sluice::api
