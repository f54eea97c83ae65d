// Hand-written HTTP output (see http_wire.hpp).
#include "http_wire.hpp"

#include <cstdio>

namespace sluice::api {

std::string_view reason_phrase(int status) {
    switch (status) {
        case 200: return "OK";
        case 202: return "Accepted";
        case 302: return "Found";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 409: return "Conflict";
        case 413: return "Payload Too Large";
        case 422: return "Unprocessable Entity";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 507: return "Insufficient Storage";
        default: return "";  // the reason phrase is optional (RFC 9112)
    }
}

std::string response_head(const HttpResult& result, unsigned version, bool keep_alive) {
    std::string head = version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
    head += std::to_string(result.status);
    head += ' ';
    head += reason_phrase(result.status);
    // 204 (a CORS preflight) has no body, and no header that describes one (RFC 9110, 8.6).
    if (result.status != 204) {
        head += "\r\nContent-Type: ";
        head += result.content_type;
    }
    for (const auto& [name, value] : result.headers) {
        head += "\r\n";
        head += name;
        head += ": ";
        head += value;
    }
    if (result.status != 204) {
        head += "\r\nContent-Length: ";
        head += std::to_string(result.body.size());
    }
    if (version >= 11 && !keep_alive) head += "\r\nConnection: close";
    if (version < 11 && keep_alive) head += "\r\nConnection: keep-alive";
    head += "\r\n\r\n";
    return head;
}

std::string sse_head(bool chunked, std::string_view extra_header_lines) {
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "X-Accel-Buffering: no\r\n";
    head += extra_header_lines;
    head += chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Connection: close\r\n\r\n";
    return head;
}

std::string chunk(std::string_view data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    std::string framed(size);
    framed += data;
    framed += "\r\n";
    return framed;
}

}  // namespace sluice::api
