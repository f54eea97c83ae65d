// The api's routes: the table (method + path pattern -> handler, in the style of
// cpp-httplib) and one handler function per route, each taking the shard's context. Adding a
// route means one row in ROUTES (routes.cpp), one handler function and its operation in
// schemas/openapi.yaml (tests/unit/test_routes.cpp fails without it).
// Loop thread only.
#pragma once

#include "auth.hpp"
#include "event_stream.hpp"
#include "request.hpp"
#include "shard_context.hpp"
#include "ws_session.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sluice::api {

using Request = boost::beast::http::request<boost::beast::http::string_body>;

// What a handler produced: a response to write, an event stream for the session to open and
// follow once the request and the frames that handled it are gone, or a WebSocket upgrade.
struct Outcome {
    Outcome(HttpResult r) : result(std::move(r)) {}  // NOLINT: a handler's usual answer
    Outcome(EventStream s) : follow(std::move(s)) {}  // NOLINT
    Outcome(WebSocketOpen w) : upgrade(std::move(w)) {}  // NOLINT
    std::optional<HttpResult> result;
    std::optional<EventStream> follow;
    std::optional<WebSocketOpen> upgrade;
};

// One request as a handler sees it.
struct RouteRequest {
    const Request& http;
    const Target& target;
    const std::string& job_id;  // the {id} segment of the path, when the pattern has one
    const Principal& principal;  // who asks (auth.hpp)
    const std::string& token_job;  // the job a read token must open: job_id, or GET /v1/ws's ?job_id=
};

using Handler = awaitable<Outcome> (*)(ShardContext&, const RouteRequest&);

struct Route {
    std::string_view method;
    std::string_view pattern;  // "{id}" matches one non-empty path segment
    Access access;
    Handler handler;
};

// Every route of the api.
std::span<const Route> routes();

struct RouteMatch {
    enum Kind { FOUND, NOT_FOUND, METHOD_NOT_ALLOWED } kind = NOT_FOUND;
    const Route* route = nullptr;  // FOUND
    std::string job_id;            // the {id} segment, when the pattern has one
    std::string allow;             // METHOD_NOT_ALLOWED: the methods the path has, "GET, DELETE"
};

// Finds the route for `method` and `path` (no query string).
RouteMatch match_route(std::string_view method, std::string_view path);

// 429 rate_limited for a key (or, without one, a tenant) past its requests per second, as a
// request or a WebSocket message takes one; read tokens and principals without a limit are
// not counted. nullopt: go on.
std::optional<HttpResult> over_request_limit(ShardContext& ctx, const Principal& principal);

// Cancels job `id` for `principal`, as DELETE /v1/jobs/{id} does (a WebSocket's cancel too):
// 200 {"id", "status": "canceled"}, 404 job_not_found (also a member's look at another
// tenant's job), 409 job_finished, 503 when Redis or the broker does not answer.
awaitable<HttpResult> cancel_as(ShardContext& ctx, const Principal& principal, const std::string& id);

// Routes a request to its handler and runs it: a CORS preflight's answer, 404 not_found, 405
// method_not_allowed (with Allow), 403 origin_not_allowed (a state-changing request from a
// browser origin not allowed), 415 unsupported_media_type (a body that is not JSON), the
// refusal of authenticate() (auth.hpp), or the handler's outcome, with the CORS headers for an
// allowed origin. A handler that throws answers 500 (and is logged). Paths under /ui are the
// dashboard's files (ui_files.hpp): no route of the table, no key.
awaitable<Outcome> handle(ShardContext& ctx, const Request& request);

}  // namespace sluice::api
