// The dashboard's static files (ui/, README.md "Dashboard"), read into memory once at start and
// served at /ui from there. A request names a key of a map, never a path on disk, so no request
// reaches a file outside the set, whatever it spells (../, %2e%2e, NUL). The page itself holds
// no data: it needs no key, and every call it makes for data carries the one the user gave.
// load() reads the disk (start-up only); everything else is pure and thread-safe.
#pragma once

#include "http_wire.hpp"

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace sluice::api {

// Where the dashboard is served; a request for "/ui" is sent on to "/ui/" so that the page's
// relative links ("app.js") resolve under it.
inline constexpr std::string_view UI_PREFIX = "/ui";

struct UiFile {
    std::string body;
    std::string_view content_type;  // a literal
};

class UiFiles {
public:
    // ui/ holds about 180 KiB (uPlot 145 of it); a tree of several MiB is a wrong directory.
    static constexpr std::size_t MAX_TOTAL_BYTES = 4 * 1024 * 1024;
    static constexpr std::size_t MAX_FILES = 200;

    // None: every /ui path is 404 (the dashboard is off).
    UiFiles() = default;

    // Reads every file under `dir` whose extension has a content type here (html, js, css, svg,
    // png, ico), skipping node_modules/ and dot entries. Throws std::runtime_error with a message
    // for the operator when `dir` is not a directory, has no index.html, holds more than
    // `max_total_bytes` or MAX_FILES such files, or a file cannot be read.
    static UiFiles load(const std::filesystem::path& dir, std::size_t max_total_bytes = MAX_TOTAL_BYTES);

    // The file served at request path `path` ("/ui/app.js"; "/ui/" is index.html), or nullptr.
    [[nodiscard]] const UiFile* find(std::string_view path) const;

    [[nodiscard]] std::size_t size() const { return files_.size(); }
    [[nodiscard]] std::size_t total_bytes() const { return total_bytes_; }

private:
    std::map<std::string, UiFile, std::less<>> files_;  // by request path
    std::size_t total_bytes_ = 0;
};

// Whether request path `path` is the dashboard's: "/ui" or under "/ui/".
bool is_ui_path(std::string_view path);

// The answer to `method` on dashboard path `path`: 200 with the file and its Content-Type,
// 302 from "/ui" to "/ui/", 404 not_found, 405 method_not_allowed (GET only). Every answer
// carries the headers that keep a browser strict with it: a Content-Security-Policy that lets
// the page load and call nothing but this origin and run no inline script, nosniff, no framing,
// no referrer, and Cache-Control no-cache (the files change when the api restarts, not on a
// schedule).
HttpResult ui_result(const UiFiles& files, std::string_view method, std::string_view path);

}  // namespace sluice::api
