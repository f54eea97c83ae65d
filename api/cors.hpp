// What the api does for browsers (README.md, Security, "Browsers"): CORS for the origins
// SLUICE_API_CORS_ORIGINS lists, and the refusals that keep a page from any other origin from
// changing anything (a cross-site form or `text/plain` POST needs no preflight, so it is
// refused here: 415 for a body that is not JSON, 403 for a state-changing request whose Origin
// is not listed). Pure: no I/O. Thread-safe.
#pragma once

#include "config.hpp"
#include "http_wire.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>
#include <string>

namespace sluice::api {

// The request's Origin when the config lists it; "" otherwise (or without one).
std::string allowed_origin(const ApiConfig& config,
                           const boost::beast::http::request<boost::beast::http::string_body>& request);

// The answer to a request the api takes no further: a CORS preflight (204 with the
// Access-Control-Allow-* headers for a listed origin, 403 origin_not_allowed for another),
// 403 origin_not_allowed for a POST or DELETE, or a WebSocket upgrade, from an origin not listed, 415
// unsupported_media_type for a body whose Content-Type is not application/json. A page of the
// api's own origin (the dashboard at /ui: Origin names the Host) counts as listed for these
// refusals; with auth off only on a loopback Host. nullopt: route it.
std::optional<HttpResult> browser_refusal(const ApiConfig& config,
                                          const boost::beast::http::request<boost::beast::http::string_body>& request);

// Adds Access-Control-Allow-Origin (and what goes with it) for a listed origin.
void add_cors_headers(const ApiConfig& config,
                      const boost::beast::http::request<boost::beast::http::string_body>& request,
                      HttpResult& result);

// The same headers as lines of a response head ("Name: value\r\n" each), for an SSE head.
std::string cors_header_lines(const std::string& origin);

}  // namespace sluice::api
