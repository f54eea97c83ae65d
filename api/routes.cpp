// The route table and one handler per route (see routes.hpp). The pure parts (validation,
// formatting) live in request.cpp; the Redis reads in job_reads.cpp.
#include "routes.hpp"

#include "admin_keys.hpp"
#include "budget_routes.hpp"
#include "cors.hpp"
#include "flow_request.hpp"
#include "job_reads.hpp"
#include "keys.hpp"
#include "listings.hpp"
#include "log.hpp"
#include "queues.hpp"
#include "schedules.hpp"
#include "trace_context.hpp"
#include "type_schemas.hpp"
#include "ui_files.hpp"
#include "webhook_routes.hpp"
#include "job_id.hpp"

#include <boost/beast/websocket/rfc6455.hpp>

#include <array>
#include <iterator>

namespace sluice::api {
namespace {

// The W3C Trace Context header a submit may carry.
constexpr char TRACEPARENT_HEADER[] = "traceparent";

// /readyz gives each dependency this long to answer its PING.
constexpr auto READY_TIMEOUT = std::chrono::milliseconds(1000);

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

HttpResult json_result(int status, const json& body) { return text_result(status, dump_json(body)); }

bool visible(const RouteRequest& req, const JobHash& hash) {
    const std::string* tenant = hash_field(hash, "tenant");
    return req.principal.may_see(tenant ? *tenant : DEFAULT_TENANT);
}

// For a member key, the 404 that hides a job of another tenant (or none) before its cancel or
// retry goes to the broker; 503 when Redis does not answer; nullopt: go on.
awaitable<std::optional<HttpResult>> hidden_job(ShardContext& ctx, const Principal& principal, const std::string& id) {
    if (principal.role != Role::MEMBER) co_return std::nullopt;
    const std::optional<std::string> tenant = co_await job_tenant(ctx, id);
    if (!tenant) co_return redis_unavailable();
    if (tenant->empty() || !principal.may_see(*tenant)) co_return job_not_found(id);
    co_return std::nullopt;
}

std::int64_t token_expiry(const ShardContext& ctx) {
    return wall_now_ms() / 1000 + std::chrono::duration_cast<std::chrono::seconds>(ctx.config.read_token_ttl).count();
}

// GET /healthz: the process is up.
awaitable<Outcome> healthz(ShardContext&, const RouteRequest&) {
    co_return json_result(200, {{"status", "ok"}});
}

// GET /readyz: Redis and the broker both answer.
awaitable<Outcome> readyz(ShardContext& ctx, const RouteRequest&) {
    const auto deadline = Clock::now() + READY_TIMEOUT;
    auto ping = ctx.broker.send(proto::Ping{});  // in flight while Redis answers
    std::vector<std::string> command = args("PING");
    const RedisValue pong = co_await ctx.redis.command(std::move(command), READY_TIMEOUT);
    const proto::Reply reply = co_await ctx.broker.wait(std::move(ping), deadline);
    const bool redis_ok = pong.ok();
    const bool broker_ok = reply.status == 200;
    if (redis_ok && broker_ok)
        co_return json_result(200, {{"status", "ready"}, {"redis", "ok"}, {"broker", "ok"}});
    std::string message;
    if (!redis_ok) message += "redis: " + pong.str;
    if (!broker_ok) {
        if (!message.empty()) message += "; ";
        message += "broker: " + (reply.message.empty() ? reply.code : reply.message);
    }
    co_return error_result(errors::NOT_READY, message);
}

// The api's metrics, then the broker's as it last stored them, and whether there were any (a
// broker gone for more than a few seconds, or Redis not answering: 0). Never a 503: the api's
// own figures are worth having most when the rest is down.
awaitable<Outcome> metrics(ShardContext& ctx, const RouteRequest&) {
    std::vector<std::string> command = args("GET", keys::BROKER_METRICS);
    const RedisValue broker = co_await ctx.redis.command(std::move(command), REDIS_TIMEOUT);
    const bool up = broker.ok() && broker.kind == RedisValue::Kind::STRING;
    std::string extra = up ? broker.str : "";
    extra += "# HELP sluice_broker_metrics_up Whether the broker's metrics above are there (it wrote them in the "
             "last 5 s).\n# TYPE sluice_broker_metrics_up gauge\nsluice_broker_metrics_up ";
    extra += up ? "1\n" : "0\n";
    HttpResult r = text_result(200, ctx.metrics.render(extra));
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    co_return r;
}

// The trace a submit continues: its one well-formed traceparent header, or none (W3C Trace
// Context: a receiver starts a new trace rather than refuse a request over it).
std::optional<trace::TraceContext> incoming_trace(const Request& http) {
    const auto headers = http.equal_range(TRACEPARENT_HEADER);
    if (headers.first == headers.second || std::next(headers.first) != headers.second) return std::nullopt;
    return trace::parse_traceparent(sv(headers.first->value()));
}

// The request's Idempotency-Key header (nullopt without one); 422 invalid_request when it is
// given more than once. Its value is checked by the parser of the body it goes with.
Checked<std::optional<std::string_view>> idempotency_header(const RouteRequest& req) {
    const auto keys = req.http.equal_range(
        boost::beast::string_view(IDEMPOTENCY_HEADER.data(), IDEMPOTENCY_HEADER.size()));
    if (keys.first == keys.second) return std::optional<std::string_view>{};
    if (std::next(keys.first) != keys.second)
        return api_error(errors::INVALID_REQUEST, std::string(IDEMPOTENCY_HEADER) + " must be given once");
    return std::optional<std::string_view>{sv(keys.first->value())};
}

// Exports the submit's span (`span`, under the caller's `parent` if any), from `start_ns` to now.
void export_submit_span(ShardContext& ctx, const proto::Submit& submit, const trace::TraceContext& span,
                        const std::optional<trace::TraceContext>& parent, std::int64_t start_ns, int status) {
    trace::Span s;
    s.trace_id = span.trace_id;
    s.span_id = span.span_id;
    if (parent) s.parent_span_id = parent->span_id;
    s.name = "POST /v1/jobs";
    s.kind = trace::Span::Kind::SERVER;
    s.start_ns = start_ns;
    s.end_ns = trace::unix_now_ns();
    s.attributes = {{"http.request.method", "POST"}, {"http.route", "/v1/jobs"}, {"sluice.job.id", submit.job_id},
                    {"sluice.job.type", submit.type}, {"sluice.tenant", submit.tenant}};
    s.int_attributes = {{"http.response.status_code", status}};
    s.error = status >= 500;
    ctx.spans->add(std::move(s));
}

// POST /v1/jobs
awaitable<Outcome> submit_job(ShardContext& ctx, const RouteRequest& req) {
    const std::int64_t start_ns = trace::unix_now_ns();
    const auto header = idempotency_header(req);
    if (const auto* error = std::get_if<ApiError>(&header)) co_return error_result(*error);
    const std::optional<std::string_view> key = std::get<std::optional<std::string_view>>(header);
    json input;
    auto parsed = parse_submit(req.http.body(), make_job_id(), key, ctx.config.max_input_bytes, wall_now_ms(), &input,
                               ctx.config.webhook_allow_nets);
    if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
    auto& submit = std::get<proto::Submit>(parsed);
    auto refused = co_await check_input(ctx, submit.type, input);
    if (refused) co_return std::move(*refused);
    submit.tenant = req.principal.tenant;
    submit.key_id = req.principal.key_id;
    submit.submits_per_s = req.principal.rates.submits_per_s;
    const std::optional<trace::TraceContext> parent = incoming_trace(req.http);
    const trace::TraceContext span = trace::child_of(parent);
    submit.traceparent = trace::format_traceparent(span);
    const proto::Reply reply = co_await ctx.broker.request(submit, ctx.config.broker_timeout);
    if (reply.status >= 500)
        log::warn("submit {}: broker answered {} {} {}", submit.job_id, reply.status, reply.code, reply.message);
    // A cached answer names a job of the same tenant (the cache key holds it); its fields (not
    // its history) give the result.
    std::optional<std::vector<JobHash>> cached;
    if (reply.cached) {
        const std::vector<std::string> ids = {reply.job_id};
        cached = co_await load_job_fields(ctx, ids);
    }
    const std::string* tenant = cached ? hash_field(cached->front(), "tenant") : nullptr;
    const std::string* cached_result =
        tenant && *tenant == submit.tenant ? hash_field(cached->front(), "result") : nullptr;
    HttpResult result = submit_result(submit, reply, ctx.config.token_secret, token_expiry(ctx), cached_result);
    if (ctx.spans != nullptr && span.sampled) export_submit_span(ctx, submit, span, parent, start_ns, result.status);
    co_return result;
}

// POST /v1/flows: a parent job and its children, stored together (README.md, "Flows").
awaitable<Outcome> submit_flow(ShardContext& ctx, const RouteRequest& req) {
    const auto header = idempotency_header(req);
    if (const auto* error = std::get_if<ApiError>(&header)) co_return error_result(*error);
    const std::optional<std::string_view> key = std::get<std::optional<std::string_view>>(header);
    auto parsed = parse_flow(req.http.body(), &make_job_id, key, ctx.config.max_input_bytes, wall_now_ms(),
                             ctx.config.webhook_allow_nets);
    if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
    auto& flow = std::get<FlowRequest>(parsed);
    const std::string traceparent = trace::format_traceparent(trace::child_of(incoming_trace(req.http)));
    for (std::size_t i = 0; i <= flow.children.size(); ++i) {
        proto::Submit& job = i == 0 ? flow.parent : flow.children[i - 1];
        auto refused = co_await check_input(ctx, job.type, flow.inputs[i]);
        if (refused) co_return std::move(*refused);
        job.tenant = req.principal.tenant;
        job.key_id = req.principal.key_id;
        job.submits_per_s = req.principal.rates.submits_per_s;
        job.traceparent = traceparent;
    }
    const proto::Reply reply = co_await ctx.broker.request(flow_message(flow), ctx.config.broker_timeout);
    if (reply.status >= 500)
        log::warn("flow {}: broker answered {} {} {}", flow.parent.job_id, reply.status, reply.code, reply.message);
    co_return flow_result(flow, reply, ctx.config.token_secret, token_expiry(ctx));
}

// GET /v1/jobs/{id}
awaitable<Outcome> get_job(ShardContext& ctx, const RouteRequest& req) {
    if (!is_uuid(req.job_id)) co_return job_not_found(req.job_id);
    const auto job = co_await load_job(ctx, req.job_id);
    if (!job) co_return redis_unavailable();
    if (job->hash.empty() || !visible(req, job->hash)) co_return job_not_found(req.job_id);
    const std::string* status = hash_field(job->hash, "status");
    const std::string* type = hash_field(job->hash, "type");
    std::optional<QueuePlace> place;
    // A job that joined another (options.dedupe) waits in that one's place.
    const std::string* joined = hash_field(job->hash, "joined");
    if (status && type && *status == "queued") place = co_await queue_place(ctx, joined ? *joined : req.job_id, *type);
    co_return text_result(200, job_json(job->hash, job->history, place));
}

// DELETE /v1/jobs/{id}
awaitable<Outcome> cancel_job(ShardContext& ctx, const RouteRequest& req) {
    HttpResult answer = co_await cancel_as(ctx, req.principal, req.job_id);
    co_return answer;
}

// GET /v1/jobs/{id}/result?wait=S: a long poll. 200 once the job is terminal, 202 with its
// current state when `wait` runs out.
awaitable<Outcome> get_result(ShardContext& ctx, const RouteRequest& req) {
    int wait_s = 0;
    if (auto it = req.target.query.find("wait"); it != req.target.query.end()) {
        auto parsed = parse_wait(it->second);
        if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
        wait_s = std::get<int>(parsed);
    }
    const std::string& id = req.job_id;
    if (!is_uuid(id)) co_return job_not_found(id);
    Waiter waiter(ctx.ioc);
    JobWatch watch(ctx.notifier, id, waiter);  // before the first read: no notice falls in between
    const auto deadline = Clock::now() + std::chrono::seconds(wait_s);
    for (;;) {
        const auto job = co_await load_job(ctx, id);
        if (!job) co_return redis_unavailable();
        if (job->hash.empty() || !visible(req, job->hash)) co_return job_not_found(id);
        const std::string* status = hash_field(job->hash, "status");
        if (status && is_terminal_status(*status)) co_return text_result(200, job_json(job->hash, job->history));
        const auto now = Clock::now();
        if (now >= deadline || ctx.stopping) co_return text_result(202, job_json(job->hash, job->history));
        const Clock::duration pause = std::min<Clock::duration>(RECHECK_INTERVAL, deadline - now);
        co_await wait_for(waiter, pause);
    }
}

// GET /v1/jobs/{id}/events: checks the request and hands the stream to the session, which
// opens and follows it (event_stream.hpp) once this request and the frames that handled it
// are gone: 10,000 clients opening their streams at once then hold little more than their
// session.
awaitable<Outcome> get_events(ShardContext& ctx, const RouteRequest& req) {
    EventStream opened;
    opened.job_id = req.job_id;
    std::optional<std::string> given;
    if (auto h = req.http.find("Last-Event-ID"); h != req.http.end())
        given = std::string(h->value());
    else if (auto q = req.target.query.find("last_event_id"); q != req.target.query.end())
        given = q->second;
    if (given) {
        auto parsed = parse_unsigned(*given);
        if (!parsed || *parsed > MAX_EVENT_ID) {
            // A bad Last-Event-ID answers 400 (as it always has), where a body field or another
            // query parameter gets invalid_request's usual 422.
            ApiError bad = api_error(errors::INVALID_REQUEST, "Last-Event-ID must be a non-negative integer");
            bad.status = 400;
            co_return error_result(bad);
        }
        opened.last = *parsed;
    }
    if (!is_uuid(req.job_id)) co_return job_not_found(req.job_id);
    if (req.principal.role == Role::MEMBER) opened.tenant = req.principal.tenant;
    opened.cors_origin = allowed_origin(ctx.config, req.http);
    opened.version = req.http.version();
    opened.keep_alive = req.http.keep_alive();
    co_return opened;
}

// GET /v1/ws: checks the upgrade and hands the connection to the session, which accepts it
// and serves the WebSocket (ws_session.hpp). A browser page's upgrade from an origin not
// listed never gets here (cors.hpp).
awaitable<Outcome> open_websocket(ShardContext&, const RouteRequest& req) {
    if (!boost::beast::websocket::is_upgrade(req.http))
        co_return error_result(errors::BAD_REQUEST, "GET /v1/ws takes a WebSocket upgrade (Upgrade: websocket)");
    const bool token = req.principal.role == Role::JOB_READER;
    co_return WebSocketOpen{req.principal, token ? req.token_job : "", {}};
}

// POST /v1/jobs/{id}/retry: a dead job goes back to its queue.
awaitable<Outcome> retry_job(ShardContext& ctx, const RouteRequest& req) {
    const std::string& id = req.job_id;
    if (!is_uuid(id)) co_return job_not_found(id);
    if (auto refused = co_await hidden_job(ctx, req.principal, id)) co_return std::move(*refused);
    proto::Retry retry;
    retry.job_id = id;
    const proto::Reply reply = co_await ctx.broker.request(retry, ctx.config.broker_timeout);
    if (reply.status >= 500)
        log::warn("retry {}: broker answered {} {} {}", id, reply.status, reply.code, reply.message);
    co_return retry_result(id, reply);
}

// GET /v1/dead: one page of dead jobs, newest first, cut short at DEAD_PAGE_MAX_BYTES. Two round
// trips whatever the page size: the page of ids with the total, then every job's fields and
// history.
awaitable<Outcome> list_dead(ShardContext& ctx, const RouteRequest& req) {
    auto parsed = parse_page(req.target.query);
    if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
    const Page page = std::get<Page>(parsed);
    // A member reads its tenant's dead set; an admin (or the open mode) the one of every tenant.
    const std::string dead = req.principal.role == Role::MEMBER ? keys::dead(req.principal.tenant) : std::string(keys::DEAD);
    std::vector<std::vector<std::string>> head;
    head.push_back(args("ZCARD", dead));
    head.push_back(args("ZREVRANGE", dead, std::to_string(page.offset),
                        std::to_string(page.offset + page.limit - 1)));
    const auto counted = co_await transaction(ctx, std::move(head));
    if (!counted) co_return redis_unavailable();
    std::vector<std::string> ids;
    for (const auto& element : (*counted)[1].elements)
        if (element.kind == RedisValue::Kind::STRING) ids.push_back(element.str);
    const auto records = co_await load_jobs(ctx, ids);
    if (!records) co_return redis_unavailable();
    DeadPageBody body(page);
    for (const auto& record : *records) {
        if (record.hash.empty()) body.skip();
        else if (!body.add(job_json(record.hash, record.history))) break;
    }
    co_return text_result(200, body.finish((*counted)[0].integer));
}

// The whole routing table: method + pattern -> handler. Each route is in schemas/openapi.yaml too
// (tests/unit/test_routes.cpp checks it).
constexpr std::array<Route, 33> ROUTES{{
    {"GET", "/healthz", Access::PUBLIC, &healthz},
    {"GET", "/readyz", Access::PUBLIC, &readyz},
    {"GET", "/openapi.json", Access::PUBLIC, &openapi},
    {"GET", "/metrics", Access::ADMIN, &metrics},
    {"POST", "/v1/jobs", Access::MEMBER, &submit_job},
    {"GET", "/v1/jobs", Access::MEMBER, &list_jobs},
    {"POST", "/v1/flows", Access::MEMBER, &submit_flow},
    {"GET", "/v1/jobs/{id}", Access::MEMBER, &get_job},
    {"DELETE", "/v1/jobs/{id}", Access::MEMBER, &cancel_job},
    {"GET", "/v1/jobs/{id}/result", Access::READER, &get_result},
    {"GET", "/v1/jobs/{id}/events", Access::READER, &get_events},
    {"POST", "/v1/jobs/{id}/retry", Access::MEMBER, &retry_job},
    {"GET", "/v1/jobs/{id}/webhooks", Access::MEMBER, &job_webhooks},
    {"GET", "/v1/webhooks/secret", Access::MEMBER, &get_webhook_secret},
    {"POST", "/v1/webhooks/secret", Access::MEMBER, &rotate_webhook_secret},
    {"POST", "/v1/webhooks", Access::MEMBER, &create_webhook},
    {"GET", "/v1/webhooks", Access::MEMBER, &list_webhooks},
    {"DELETE", "/v1/webhooks/{id}", Access::MEMBER, &delete_webhook},
    {"GET", "/v1/dead", Access::MEMBER, &list_dead},
    {"POST", "/v1/schedules", Access::MEMBER, &create_schedule},
    {"GET", "/v1/schedules", Access::MEMBER, &list_schedules},
    {"GET", "/v1/schedules/{id}", Access::MEMBER, &get_schedule},
    {"DELETE", "/v1/schedules/{id}", Access::MEMBER, &delete_schedule},
    {"GET", "/v1/workers", Access::MEMBER, &list_workers},
    {"GET", "/v1/queues", Access::MEMBER, &list_queues},
    {"GET", "/v1/types", Access::MEMBER, &list_types},
    {"GET", "/v1/ws", Access::READER, &open_websocket},
    {"POST", "/v1/admin/keys", Access::ADMIN, &create_key},
    {"GET", "/v1/admin/keys", Access::ADMIN, &list_keys},
    {"DELETE", "/v1/admin/keys/{id}", Access::ADMIN, &revoke_key},
    {"PUT", "/v1/budgets", Access::ADMIN, &put_budget},
    {"GET", "/v1/budgets", Access::ADMIN, &list_budgets},
    {"DELETE", "/v1/budgets", Access::ADMIN, &delete_budget},
}};

// The metrics' rows past the table's (server.cpp): the dashboard's files, then what matched nothing.
constexpr std::size_t UI_ROUTE_INDEX = ROUTES.size();
constexpr std::size_t UNMATCHED_ROUTE_INDEX = ROUTES.size() + 1;

}  // namespace

std::span<const Route> routes() { return ROUTES; }

std::optional<HttpResult> over_request_limit(ShardContext& ctx, const Principal& principal) {
    const std::uint32_t limit = principal.rates.requests_per_s;
    if (limit == 0 || principal.role == Role::JOB_READER) return std::nullopt;
    const std::string owner = principal.key_id.empty() ? "tenant " + principal.tenant : principal.key_id;
    const auto taken = ctx.request_limits.take(owner, limit, TokenBucket::Clock::now());
    if (taken.ok) return std::nullopt;
    return rate_limited("requests", limit, taken);
}

awaitable<HttpResult> cancel_as(ShardContext& ctx, const Principal& principal, const std::string& id) {
    if (!is_uuid(id)) co_return job_not_found(id);
    if (auto refused = co_await hidden_job(ctx, principal, id)) co_return std::move(*refused);
    proto::Cancel cancel;
    cancel.job_id = id;
    const proto::Reply reply = co_await ctx.broker.request(cancel, ctx.config.broker_timeout);
    co_return cancel_result(id, reply);
}

RouteMatch match_route(std::string_view method, std::string_view path) {
    RouteMatch match;
    for (const Route& route : ROUTES) {
        std::string id;
        if (!match_path(route.pattern, path, id)) continue;
        if (route.method == method) {
            match.kind = RouteMatch::FOUND;
            match.route = &route;
            match.job_id = std::move(id);
            match.allow.clear();
            return match;
        }
        match.kind = RouteMatch::METHOD_NOT_ALLOWED;
        if (!match.allow.empty()) match.allow += ", ";
        match.allow += route.method;
    }
    return match;
}

namespace {

// The job a read token must open to be let in: the {id} of the path, or for GET /v1/ws, whose
// path names none, the job its `job_id` query parameter names.
std::string job_of_token(const RouteMatch& match, const Target& target) {
    if (!match.job_id.empty()) return match.job_id;
    const auto named = target.query.find("job_id");
    return named == target.query.end() ? "" : named->second;
}

// Who asks, and the outcome of the request's route `match` (see handle()).
awaitable<Outcome> route(ShardContext& ctx, const Request& request, const Target& target, const RouteMatch& match) {
    if (match.kind == RouteMatch::NOT_FOUND)
        co_return error_result(errors::NOT_FOUND, "no such endpoint: " + target.path);
    if (match.kind == RouteMatch::METHOD_NOT_ALLOWED) {
        HttpResult r = error_result(errors::METHOD_NOT_ALLOWED,
                                    std::string(request.method_string()) + " is not allowed on " + target.path);
        r.headers.emplace_back("Allow", match.allow);
        co_return r;
    }
    try {
        // Each co_await stands alone in its statement: GCC 12 double-destroys temporaries
        // of a co_await nested in a larger expression.
        const std::string token_job = job_of_token(match, target);
        auto who = co_await authenticate(ctx, request, target, match.route->access, token_job);
        if (auto* refused = std::get_if<HttpResult>(&who)) co_return std::move(*refused);
        const Principal& principal = std::get<Principal>(who);
        if (auto refused = over_request_limit(ctx, principal)) co_return std::move(*refused);
        const RouteRequest req{request, target, match.job_id, principal, token_job};
        Outcome outcome = co_await match.route->handler(ctx, req);
        co_return outcome;
    } catch (const std::exception& e) {
        log::error("{} {} failed: {}", std::string(request.method_string()), target.path, e.what());
    }
    co_return error_result(errors::INTERNAL_ERROR, "internal error");
}

}  // namespace

awaitable<Outcome> handle(ShardContext& ctx, const Request& request) {
    const auto arrived = Clock::now();
    const Target target = split_target(sv(request.target()));
    const bool ui = is_ui_path(target.path);
    const RouteMatch match = ui ? RouteMatch{} : match_route(sv(request.method_string()), target.path);
    const std::size_t route_index = ui            ? UI_ROUTE_INDEX
                                    : match.route ? static_cast<std::size_t>(match.route - ROUTES.data())
                                                  : UNMATCHED_ROUTE_INDEX;
    const auto counted = [&](Outcome outcome) {
        ctx.metrics.record(route_index, outcome.result ? outcome.result->status : outcome.upgrade ? 101 : 200,
                           Clock::now() - arrived);
        return outcome;
    };
    if (auto refused = browser_refusal(ctx.config, request)) co_return counted(std::move(*refused));
    if (ui) co_return counted(ui_result(ctx.config.ui, sv(request.method_string()), target.path));
    Outcome outcome = co_await route(ctx, request, target, match);
    if (outcome.result) add_cors_headers(ctx.config, request, *outcome.result);
    co_return counted(std::move(outcome));
}

}  // namespace sluice::api
