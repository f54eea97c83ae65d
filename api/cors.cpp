// CORS and the browser refusals (see cors.hpp).
#include "cors.hpp"

#include "request.hpp"

#include <boost/beast/websocket/rfc6455.hpp>

#include <algorithm>
#include <cctype>

namespace sluice::api {
namespace {

namespace http = boost::beast::http;

// What a listed origin's pages may send and read. Preflights are cached for 10 minutes.
constexpr std::string_view ALLOW_METHODS = "GET, POST, PUT, DELETE";
constexpr std::string_view ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, traceparent";
constexpr std::string_view EXPOSE_HEADERS = "Location, Retry-After, Idempotent-Replayed";
constexpr std::string_view MAX_AGE = "600";

std::string_view text(boost::beast::string_view s) { return {s.data(), s.size()}; }

std::vector<std::pair<std::string, std::string>> cors_headers(const std::string& origin) {
    return {{"Access-Control-Allow-Origin", origin},
            {"Access-Control-Expose-Headers", std::string(EXPOSE_HEADERS)},
            {"Vary", "Origin"}};
}

// application/json, with any parameters (charset) and in any case.
bool is_json(std::string_view content_type) {
    const std::string_view media = content_type.substr(0, content_type.find(';'));
    std::string lowered;
    for (char c : media)
        if (c != ' ' && c != '\t') lowered += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lowered == "application/json";
}

std::string lowercase(std::string_view s) {
    std::string out;
    for (char c : s) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Whether `host` (a Host header: name or address, and maybe a port) names this machine's loopback.
bool loopback_host(std::string_view host) {
    const std::string_view name = host.starts_with('[') ? host.substr(0, host.find(']') + 1) : host.substr(0, host.find(':'));
    return name == "localhost" || name.starts_with("127.") || name == "[::1]";
}

// Whether the request comes from a page of this api's own origin (the dashboard at /ui): its
// Origin names the scheme-less Host the request was sent to. Browsers send Origin on a
// same-origin POST or DELETE too. With auth off, only for a loopback Host: a site whose name a
// DNS rebinding points at this api would be "same origin" too, and would need no key.
bool same_origin(const ApiConfig& config, const http::request<http::string_body>& request) {
    const auto origin = request.find(http::field::origin);
    const auto host = request.find(http::field::host);
    if (origin == request.end() || host == request.end()) return false;
    const std::string value = lowercase(text(origin->value()));
    const std::string expected = lowercase(text(host->value()));
    if (expected.empty() || (!config.auth_required && !loopback_host(expected))) return false;
    return value == "http://" + expected || value == "https://" + expected;
}

}  // namespace

std::string allowed_origin(const ApiConfig& config, const http::request<http::string_body>& request) {
    const auto origin = request.find(http::field::origin);
    if (origin == request.end()) return "";
    const std::string value(text(origin->value()));
    return std::find(config.cors_origins.begin(), config.cors_origins.end(), value) != config.cors_origins.end() ? value
                                                                                                                 : "";
}

std::optional<HttpResult> browser_refusal(const ApiConfig& config, const http::request<http::string_body>& request) {
    // A page of the api's own origin is treated as having no Origin: the refusals below are
    // for pages of other sites.
    const bool has_origin = request.find(http::field::origin) != request.end() && !same_origin(config, request);
    const std::string origin = allowed_origin(config, request);
    const auto method = request.method();
    if (method == http::verb::options && has_origin) {
        if (origin.empty())
            return error_result(errors::ORIGIN_NOT_ALLOWED, "this origin may not call the api (SLUICE_API_CORS_ORIGINS)");
        HttpResult preflight;
        preflight.status = 204;
        preflight.headers = cors_headers(origin);
        preflight.headers.emplace_back("Access-Control-Allow-Methods", std::string(ALLOW_METHODS));
        preflight.headers.emplace_back("Access-Control-Allow-Headers", std::string(ALLOW_HEADERS));
        preflight.headers.emplace_back("Access-Control-Max-Age", std::string(MAX_AGE));
        return preflight;
    }
    if (has_origin && origin.empty() && method != http::verb::get && method != http::verb::head)
        return error_result(errors::ORIGIN_NOT_ALLOWED,
                            "a browser page from this origin may not change anything here (SLUICE_API_CORS_ORIGINS)");
    // Browsers send no preflight before a WebSocket: without this, any site's page could open
    // one with the cookies or credentials of whoever views it (cross-site WebSocket hijacking).
    if (has_origin && origin.empty() && boost::beast::websocket::is_upgrade(request))
        return error_result(errors::ORIGIN_NOT_ALLOWED,
                            "a browser page from this origin may not open a WebSocket here (SLUICE_API_CORS_ORIGINS)");
    if (!request.body().empty()) {
        const auto type = request.find(http::field::content_type);
        if (type == request.end() || !is_json(text(type->value())))
            return error_result(errors::UNSUPPORTED_MEDIA_TYPE, "a request body must be JSON: Content-Type: application/json");
    }
    return std::nullopt;
}

void add_cors_headers(const ApiConfig& config, const http::request<http::string_body>& request, HttpResult& result) {
    const std::string origin = allowed_origin(config, request);
    if (origin.empty()) return;
    for (auto& header : cors_headers(origin)) result.headers.push_back(std::move(header));
}

std::string cors_header_lines(const std::string& origin) {
    std::string lines;
    if (origin.empty()) return lines;
    for (const auto& [name, value] : cors_headers(origin)) lines += name + ": " + value + "\r\n";
    return lines;
}

}  // namespace sluice::api
