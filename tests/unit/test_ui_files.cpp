// Unit tests of the dashboard's files (api/ui_files.hpp): what load() reads and what it refuses,
// hostile request paths finding nothing, and the headers and statuses of ui_result().
#include "ui_files.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

using namespace sluice::api;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system's temporary one, removed with the object.
struct TempDir {
    TempDir() {
        // mkdtemp's template: the name ends in six characters it replaces.
        std::string name = (fs::temp_directory_path() / "sluice-ui-").string() + std::string(6, 'X');
        REQUIRE(::mkdtemp(name.data()) != nullptr);
        path = name;
    }
    ~TempDir() { fs::remove_all(path); }
    void write(const std::string& relative, const std::string& body) const {
        fs::create_directories((path / relative).parent_path());
        std::ofstream(path / relative, std::ios::binary) << body;
    }
    fs::path path;
};

std::string header(const HttpResult& r, const std::string& name) {
    for (const auto& [key, value] : r.headers)
        if (key == name) return value;
    return "";
}

}  // namespace

TEST_CASE("load: the files to serve, by path, and nothing else") {
    TempDir dir;
    dir.write("index.html", "<!doctype html>");
    dir.write("app.js", "export {};");
    dir.write("vendor/chart.css", ".c{}");
    dir.write("node_modules/lib/index.js", "secret");
    dir.write(".hidden.js", "secret");
    dir.write("package.json", "{}");
    const UiFiles files = UiFiles::load(dir.path);
    CHECK(files.size() == 3);
    CHECK(files.total_bytes() == 15 + 10 + 4);
    REQUIRE(files.find("/ui/") != nullptr);
    CHECK(files.find("/ui/")->body == "<!doctype html>");
    CHECK(files.find("/ui/index.html")->content_type == "text/html; charset=utf-8");
    CHECK(files.find("/ui/app.js")->content_type == "text/javascript; charset=utf-8");
    CHECK(files.find("/ui/vendor/chart.css")->content_type == "text/css; charset=utf-8");
    for (const char* path : {"/ui/node_modules/lib/index.js", "/ui/.hidden.js", "/ui/package.json", "/ui",
                             "/ui/../ui/app.js", "/ui/%2e%2e/app.js", "/ui/vendor/../app.js", "/ui//app.js",
                             "/ui/app.js/", "/ui/APP.JS", "/app.js", "/ui/app.js?x=1"})
        CHECK_MESSAGE(files.find(path) == nullptr, path);
    CHECK(files.find(std::string_view("/ui/app.js\0", 11)) == nullptr);
    CHECK(files.find("/ui/" + std::string(100000, 'a')) == nullptr);
}

TEST_CASE("load: refuses a missing directory, one without index.html, and one too big") {
    TempDir dir;
    CHECK_THROWS_AS(UiFiles::load(dir.path / "absent"), std::runtime_error);
    dir.write("app.js", "export {};");
    CHECK_THROWS_WITH_AS(UiFiles::load(dir.path), doctest::Contains("no index.html"), std::runtime_error);
    dir.write("index.html", std::string(100, 'x'));
    CHECK_NOTHROW(UiFiles::load(dir.path, 110));
    CHECK_THROWS_WITH_AS(UiFiles::load(dir.path, 109), doctest::Contains("more than 109 bytes"), std::runtime_error);
}

TEST_CASE("paths of the dashboard") {
    for (const char* path : {"/ui", "/ui/", "/ui/app.js", "/ui/a/b"}) CHECK_MESSAGE(is_ui_path(path), path);
    for (const char* path : {"/", "/uix", "/u", "/v1/ui", "/ui.js"}) CHECK_MESSAGE(!is_ui_path(path), path);
}

TEST_CASE("ui_result: files, the redirect, 404 and 405, every one with the strict headers") {
    TempDir dir;
    dir.write("index.html", "<!doctype html>");
    const UiFiles files = UiFiles::load(dir.path);
    const HttpResult index = ui_result(files, "GET", "/ui/");
    CHECK(index.status == 200);
    CHECK(index.body == "<!doctype html>");
    CHECK(index.content_type == "text/html; charset=utf-8");
    const HttpResult moved = ui_result(files, "GET", "/ui");
    CHECK(moved.status == 302);
    CHECK(header(moved, "Location") == "/ui/");
    const HttpResult missing = ui_result(files, "GET", "/ui/../etc/passwd");
    CHECK(missing.status == 404);
    CHECK(missing.body.find("\"not_found\"") != std::string::npos);
    CHECK(missing.content_type == "application/json");
    const HttpResult posted = ui_result(files, "POST", "/ui/");
    CHECK(posted.status == 405);
    CHECK(header(posted, "Allow") == "GET");
    for (const HttpResult* r : {&index, &moved, &missing, &posted}) {
        const std::string csp = header(*r, "Content-Security-Policy");
        CHECK(csp.find("default-src 'self'") == 0);
        CHECK(csp.find("script-src 'self';") != std::string::npos);
        CHECK(csp.find("unsafe-inline") == std::string::npos);
        CHECK(header(*r, "X-Content-Type-Options") == "nosniff");
        CHECK(header(*r, "Cache-Control") == "no-cache");
    }
    CHECK(ui_result(UiFiles{}, "GET", "/ui/").status == 404);
}
