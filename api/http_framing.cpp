// Request framing checks (see http_framing.hpp).
#include "http_framing.hpp"

#include <boost/beast/core/string.hpp>

namespace sluice::api {

namespace http = boost::beast::http;

std::optional<std::string_view> framing_problem(const http::request_header<>& header) {
    const std::size_t codings = header.count(http::field::transfer_encoding);
    if (codings > 0) {
        if (header.count(http::field::content_length) > 0)
            return "a request must not carry both Content-Length and Transfer-Encoding";
        if (header.version() < 11) return "Transfer-Encoding is not allowed in an HTTP/1.0 request";
        if (codings > 1 || !boost::beast::iequals(header[http::field::transfer_encoding], "chunked"))
            return "Transfer-Encoding must be exactly chunked: no other transfer coding is accepted";
    }
    const std::size_t hosts = header.count(http::field::host);
    if (hosts == 0 && header.version() >= 11) return "an HTTP/1.1 request must carry Host";
    if (hosts > 1) return "a request must carry one Host, not several";
    return std::nullopt;
}

}  // namespace sluice::api
