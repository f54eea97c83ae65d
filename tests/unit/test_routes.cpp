// Unit tests of the api's route table (api/routes.hpp): every route is found by its method
// and path, a path without the method is 405 with Allow, and anything else is 404; the OpenAPI
// document the api serves lists exactly these routes, each with who may use it.
#include "listings.hpp"
#include "openapi_json.hpp"
#include "routes.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <set>
#include <vector>
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

// Whether `operation` of the OpenAPI document `doc` lists error `code` among its `status` answers.
bool documents_code(const nlohmann::json& doc, const nlohmann::json& operation, const std::string& status,
                    const std::string& code) {
    const nlohmann::json& responses = operation.at("responses");
    if (!responses.contains(status)) return false;
    const auto ref = responses.at(status).at("$ref").get<std::string>();
    const nlohmann::json& response = doc.at(nlohmann::json::json_pointer(ref.substr(1)));
    const auto codes = response.at(nlohmann::json::json_pointer("/content/application~1json/schema/properties/error/properties/code/enum"));
    return std::find(codes.begin(), codes.end(), code) != codes.end();
}

}  // namespace

TEST_CASE("routing: found, 404, 405 with Allow") {
    CHECK(found("GET", "/healthz") == "/healthz");
    CHECK(found("GET", "/readyz") == "/readyz");
    CHECK(found("GET", "/openapi.json") == "/openapi.json");
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
    // The secret's path is its own route, before an endpoint id.
    m = match_route("POST", "/v1/webhooks/secret");
    CHECK(m.kind == RouteMatch::FOUND);
    CHECK(m.route->pattern == "/v1/webhooks/secret");
    m = match_route("DELETE", "/v1/webhooks/wh_0123456789abcdef01234567");
    CHECK(m.kind == RouteMatch::FOUND);
    CHECK(m.job_id == "wh_0123456789abcdef01234567");
    m = match_route("GET", "/v1/schedules/sch_0123456789abcdef01234567");
    CHECK(m.kind == RouteMatch::FOUND);
    CHECK(m.job_id == "sch_0123456789abcdef01234567");
    CHECK(match_route("PUT", "/v1/schedules/x").allow == "GET, DELETE");
    CHECK(match_route("POST", "/v1/schedules").route->access == Access::MEMBER);
}

TEST_CASE("the table: one handler per route, no (method, pattern) twice") {
    std::set<std::pair<std::string_view, std::string_view>> seen;
    for (const Route& route : routes()) {
        CHECK(static_cast<bool>(route.handler));
        CHECK_MESSAGE(seen.emplace(route.method, route.pattern).second, route.method << " " << route.pattern);
    }
    CHECK(seen.size() == 29);
}

TEST_CASE("who may use each route: health for anybody, key management for admins, reads by token") {
    auto access_of = [](std::string_view method, std::string_view path) { return match_route(method, path).route->access; };
    CHECK(access_of("GET", "/healthz") == Access::PUBLIC);
    CHECK(access_of("GET", "/readyz") == Access::PUBLIC);
    CHECK(access_of("GET", "/openapi.json") == Access::PUBLIC);
    CHECK(access_of("POST", "/v1/jobs") == Access::MEMBER);
    CHECK(access_of("GET", "/v1/jobs/x") == Access::MEMBER);
    CHECK(access_of("DELETE", "/v1/jobs/x") == Access::MEMBER);
    CHECK(access_of("POST", "/v1/jobs/x/retry") == Access::MEMBER);
    CHECK(access_of("GET", "/v1/dead") == Access::MEMBER);
    CHECK(access_of("GET", "/v1/workers") == Access::MEMBER);
    CHECK(access_of("GET", "/v1/types") == Access::MEMBER);
    CHECK(access_of("GET", "/v1/jobs") == Access::MEMBER);
    for (const auto& [method, path] : std::vector<std::pair<std::string_view, std::string_view>>{
             {"GET", "/v1/jobs/x/webhooks"}, {"POST", "/v1/webhooks"}, {"GET", "/v1/webhooks"},
             {"DELETE", "/v1/webhooks/x"}, {"GET", "/v1/webhooks/secret"}, {"POST", "/v1/webhooks/secret"}})
        CHECK(access_of(method, path) == Access::MEMBER);
    CHECK(access_of("GET", "/v1/jobs/x/events") == Access::READER);
    CHECK(access_of("GET", "/v1/jobs/x/result") == Access::READER);
    CHECK(access_of("GET", "/v1/ws") == Access::READER);
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

TEST_CASE("the OpenAPI document: every route, no other, each with who may use it") {
    const nlohmann::json doc = nlohmann::json::parse(OPENAPI_JSON);
    const nlohmann::json& paths = doc.at("paths");
    for (const Route& route : routes()) {
        std::string method(route.method);
        std::transform(method.begin(), method.end(), method.begin(), [](unsigned char c) { return std::tolower(c); });
        const std::string pattern(route.pattern);
        const bool documented = paths.contains(pattern) && paths.at(pattern).contains(method);
        CHECK_MESSAGE(documented, route.method << " " << route.pattern << " is routed but not in schemas/openapi.yaml");
        if (!documented) continue;
        INFO(route.method << " " << route.pattern);
        // An operation without `security` needs the document's default, an API key.
        const nlohmann::json& operation = paths.at(pattern).at(method);
        const nlohmann::json security = operation.value("security", doc.at("security"));
        const bool opens_with_token = std::any_of(security.begin(), security.end(),
                                                  [](const nlohmann::json& s) { return s.contains("readToken"); });
        CHECK((route.access == Access::PUBLIC) == security.empty());
        CHECK((route.access == Access::READER) == opens_with_token);
        CHECK((route.access == Access::ADMIN) == documents_code(doc, operation, "403", "forbidden"));
    }
    for (const auto& [path, item] : paths.items()) {
        for (const auto& entry : item.items()) {
            if (entry.key() == "parameters") continue;
            std::string upper = entry.key();
            std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
            const auto at = path.find("{id}");
            const std::string concrete = at == std::string::npos ? path : path.substr(0, at) + "x" + path.substr(at + 4);
            const RouteMatch m = match_route(upper, concrete);
            CHECK_MESSAGE(m.kind == RouteMatch::FOUND, upper << " " << path << " is in schemas/openapi.yaml but not routed");
            if (m.kind == RouteMatch::FOUND) CHECK(m.route->pattern == path);
        }
    }
}
