// Unit tests of the api's route table (api/routes.hpp): every route is found by its method
// and path, a path without the method is 405 with Allow, and anything else is 404.
#include "listings.hpp"
#include "routes.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace sluice::api;

namespace {

const std::string ID = "0b7c1f0e-2d4e-4a7b-9c1d-3e5f7a9b1c2d";

// The pattern of the route `method` `path` leads to, or "" when none does.
std::string found(const std::string& method, const std::string& path, const std::string& id = "") {
    const RouteMatch m = match_route(method, path);
    CHECK_MESSAGE(m.kind == RouteMatch::FOUND, method << " " << path);
    if (m.kind != RouteMatch::FOUND) return "";
    CHECK(m.route->method == method);
    CHECK(m.job_id == id);
    return std::string(m.route->pattern);
}

}  // namespace

TEST_CASE("routing: found, 404, 405 with Allow") {
    CHECK(found("GET", "/healthz") == "/healthz");
    CHECK(found("GET", "/readyz") == "/readyz");
    CHECK(found("POST", "/v1/jobs") == "/v1/jobs");
    CHECK(found("GET", "/v1/jobs/abc", "abc") == "/v1/jobs/{id}");
    CHECK(found("DELETE", "/v1/jobs/abc", "abc") == "/v1/jobs/{id}");
    CHECK(found("GET", "/v1/jobs/abc/result", "abc") == "/v1/jobs/{id}/result");
    CHECK(found("GET", "/v1/jobs/abc/events", "abc") == "/v1/jobs/{id}/events");
    CHECK(found("POST", "/v1/jobs/" + ID + "/retry", ID) == "/v1/jobs/{id}/retry");
    CHECK(found("GET", "/v1/dead") == "/v1/dead");

    for (const char* path : {"/", "/v2/nothing", "/v1/jobs/", "/v1/jobs//events", "/v1/jobs/a/b",
                             "/v1/jobs/a/events/x", "/healthz/", "/v1", "/v1/dead/x"}) {
        CHECK_MESSAGE(match_route("GET", path).kind == RouteMatch::NOT_FOUND, path);
    }

    RouteMatch m = match_route("PUT", "/v1/jobs");
    CHECK(m.kind == RouteMatch::METHOD_NOT_ALLOWED);
    CHECK(m.allow == "POST, GET");
    m = match_route("POST", "/v1/jobs/abc");
    CHECK(m.kind == RouteMatch::METHOD_NOT_ALLOWED);
    CHECK(m.allow == "GET, DELETE");
    m = match_route("DELETE", "/healthz");
    CHECK(m.allow == "GET");
    CHECK(match_route("get", "/healthz").kind == RouteMatch::METHOD_NOT_ALLOWED);
    m = match_route("GET", "/v1/jobs/" + ID + "/retry");
    CHECK(m.kind == RouteMatch::METHOD_NOT_ALLOWED);
    CHECK(m.allow == "POST");
    m = match_route("DELETE", "/v1/dead");
    CHECK(m.kind == RouteMatch::METHOD_NOT_ALLOWED);
    CHECK(m.allow == "GET");
}

TEST_CASE("the table: one handler per route, no (method, pattern) twice") {
    std::set<std::pair<std::string_view, std::string_view>> seen;
    for (const Route& route : routes()) {
        CHECK(static_cast<bool>(route.handler));
        CHECK_MESSAGE(seen.emplace(route.method, route.pattern).second, route.method << " " << route.pattern);
    }
    CHECK(seen.size() == 14);
}

TEST_CASE("who may use each route: health for anybody, key management for admins, reads by token") {
    auto access_of = [](std::string_view method, std::string_view path) { return match_route(method, path).route->access; };
    CHECK(access_of("GET", "/healthz") == Access::PUBLIC);
    CHECK(access_of("GET", "/readyz") == Access::PUBLIC);
    CHECK(access_of("POST", "/v1/jobs") == Access::MEMBER);
    CHECK(access_of("GET", "/v1/jobs/x") == Access::MEMBER);
    CHECK(access_of("DELETE", "/v1/jobs/x") == Access::MEMBER);
    CHECK(access_of("POST", "/v1/jobs/x/retry") == Access::MEMBER);
    CHECK(access_of("GET", "/v1/dead") == Access::MEMBER);
    CHECK(access_of("GET", "/v1/workers") == Access::MEMBER);
    CHECK(access_of("GET", "/v1/jobs") == Access::MEMBER);
    CHECK(access_of("GET", "/v1/jobs/x/events") == Access::READER);
    CHECK(access_of("GET", "/v1/jobs/x/result") == Access::READER);
    CHECK(access_of("POST", "/v1/admin/keys") == Access::ADMIN);
    CHECK(access_of("GET", "/v1/admin/keys") == Access::ADMIN);
    CHECK(access_of("DELETE", "/v1/admin/keys/0123456789abcdef") == Access::ADMIN);
}

TEST_CASE("the worker report: none yet, a report, and bytes that are not one") {
    const auto none = nlohmann::json::parse(*workers_json(""));
    CHECK(none == nlohmann::json{{"workers", nlohmann::json::array()}, {"total", 0}, {"as_of", nullptr}});
    const nlohmann::json report = {
        {"as_of_ms", 1700000000500}, {"total", 1},
        {"workers", {{{"name", "w"}, {"runtime", "cpp"}, {"types", {"echo"}}, {"concurrency", 4}, {"running", 1},
                      {"last_heartbeat_ms", 1700000000000}, {"leaving", false}}}}};
    const auto bytes = nlohmann::json::to_msgpack(report);
    const auto shown = nlohmann::json::parse(*workers_json({reinterpret_cast<const char*>(bytes.data()), bytes.size()}));
    CHECK(shown["as_of"] == "2023-11-14T22:13:20.500Z");
    CHECK(shown["workers"][0]["last_heartbeat"] == "2023-11-14T22:13:20.000Z");
    CHECK_FALSE(shown["workers"][0].contains("last_heartbeat_ms"));
    CHECK(shown["workers"][0]["types"] == nlohmann::json{"echo"});
    CHECK_FALSE(workers_json("\xc1 not msgpack"));
    const auto list = nlohmann::json::to_msgpack(nlohmann::json::array({1, 2}));
    CHECK_FALSE(workers_json({reinterpret_cast<const char*>(list.data()), list.size()}));
}
