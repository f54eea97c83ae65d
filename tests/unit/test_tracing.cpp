// The W3C traceparent reader and writer (common/trace_context.hpp), against the spec's examples
// and its rules for malformed values, and the OTLP JSON the span exporter posts
// (common/span_exporter.hpp). A real collector's view of it is tests/e2e/test_traces.py.
#include "span_exporter.hpp"
#include "trace_context.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <vector>

using namespace sluice::trace;

TEST_CASE("the spec's example traceparent is read and written back as it was") {
    const std::string header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const auto context = parse_traceparent(header);
    REQUIRE(context);
    CHECK(context->trace_id == "0af7651916cd43dd8448eb211c80319c");
    CHECK(context->span_id == "b7ad6b7169203331");
    CHECK(context->sampled);
    CHECK(format_traceparent(*context) == header);
    const auto unsampled = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
    REQUIRE(unsampled);
    CHECK_FALSE(unsampled->sampled);
}

TEST_CASE("a malformed traceparent is refused, so the api starts a new trace") {
    const std::string good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for (const std::string& bad : std::vector<std::string>{
             "", "00", good.substr(0, 54), good + "-",
                                  "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                  "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
                                  "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                                  "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                                  "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
                                  std::string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033\0""1-01", 55),
                                  std::string(4096, 'a')}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_traceparent(bad));
    }
}

TEST_CASE("a later version is read as version 00, what it appends ignored") {
    const auto context = parse_traceparent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-comes-next");
    REQUIRE(context);
    CHECK(context->trace_id == "0af7651916cd43dd8448eb211c80319c");
    CHECK_FALSE(parse_traceparent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x"));
}

TEST_CASE("a child keeps its parent's trace and flags; without a parent a sampled trace starts") {
    const auto parent = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
    const TraceContext child = child_of(parent);
    CHECK(child.trace_id == parent->trace_id);
    CHECK(child.span_id != parent->span_id);
    CHECK_FALSE(child.sampled);
    const TraceContext root = child_of(std::nullopt);
    CHECK(root.sampled);
    CHECK(parse_traceparent(format_traceparent(root)));
    CHECK(new_trace_id() != new_trace_id());
    CHECK(new_span_id().size() == 16);
}

TEST_CASE("endpoints: http only, with an optional port and base path") {
    CHECK_FALSE(endpoint_problem("http://127.0.0.1:4318"));
    CHECK_FALSE(endpoint_problem("http://collector/"));
    CHECK_FALSE(endpoint_problem("http://[::1]:4318/otlp"));
    for (const char* bad : {"", "https://collector:4318", "collector:4318", "http://:4318", "http://c:0", "http://c:99999",
                            "http://c:43x", "http://c/a b", "http://c/?q=1"}) {
        CAPTURE(bad);
        CHECK(endpoint_problem(bad));
    }
}

TEST_CASE("the OTLP JSON carries hex ids, string nanoseconds, numeric kinds, attributes and the service") {
    Span span;
    span.trace_id = "0af7651916cd43dd8448eb211c80319c";
    span.span_id = "b7ad6b7169203331";
    span.parent_span_id = "00f067aa0ba902b7";
    span.name = "POST /v1/jobs";
    span.kind = Span::Kind::SERVER;
    span.start_ns = 1700000000000000000;
    span.end_ns = 1700000000000500000;
    span.attributes = {{"sluice.job.type", "echo\xff"}};
    span.int_attributes = {{"http.response.status_code", 202}};
    span.error = true;
    span.status_message = "broker away";
    const auto body = nlohmann::json::parse(otlp_json("sluice-api", {span}));
    const auto& resource = body["resourceSpans"][0];
    CHECK(resource["resource"]["attributes"][0]["key"] == "service.name");
    CHECK(resource["resource"]["attributes"][0]["value"]["stringValue"] == "sluice-api");
    const auto& s = resource["scopeSpans"][0]["spans"][0];
    CHECK(s["traceId"] == span.trace_id);
    CHECK(s["parentSpanId"] == span.parent_span_id);
    CHECK(s["kind"] == 2);
    CHECK(s["startTimeUnixNano"] == "1700000000000000000");
    CHECK(s["attributes"][0]["value"]["stringValue"] == "echo\xef\xbf\xbd");  // invalid UTF-8 replaced
    CHECK(s["attributes"][1]["value"]["intValue"] == "202");
    CHECK(s["status"]["code"] == 2);
    span.parent_span_id.clear();
    span.error = false;
    const auto root = nlohmann::json::parse(otlp_json("sluice-api", {span}))["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    CHECK_FALSE(root.contains("parentSpanId"));
    CHECK_FALSE(root.contains("status"));
}
