// The dashboard's files in memory (see ui_files.hpp).
#include "ui_files.hpp"

#include "request.hpp"

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <utility>

namespace sluice::api {
namespace {

namespace fs = std::filesystem;

// The content type of each extension served; any other file is left out.
constexpr std::pair<std::string_view, std::string_view> CONTENT_TYPES[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
};

// 'self' only: the page's modules, styles and API calls all come from the api. uPlot sets
// element styles from script (CSSOM), which style-src does not govern; img-src allows data:
// for the PNG a chart may be saved as.
constexpr std::string_view CONTENT_SECURITY_POLICY =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

std::string_view content_type_of(const fs::path& file) {
    const std::string extension = file.extension().string();
    for (const auto& [ext, type] : CONTENT_TYPES)
        if (extension == ext) return type;
    return {};
}

std::string read_whole(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::string body{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (!in.good() && !in.eof()) throw std::runtime_error("cannot read " + file.string());
    return body;
}

void add_strict_headers(HttpResult& r) {
    r.headers.emplace_back("Content-Security-Policy", std::string(CONTENT_SECURITY_POLICY));
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("X-Frame-Options", "DENY");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("Cache-Control", "no-cache");
}

}  // namespace

UiFiles UiFiles::load(const fs::path& dir, std::size_t max_total_bytes) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw std::runtime_error(dir.string() + " is not a directory (the dashboard's files: ui/ of the source tree)");
    UiFiles files;
    auto it = fs::recursive_directory_iterator(dir, ec);
    if (ec) throw std::runtime_error("cannot list " + dir.string() + ": " + ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) throw std::runtime_error("cannot list " + dir.string() + ": " + ec.message());
        const fs::path& path = it->path();
        const std::string name = path.filename().string();
        if (name.starts_with(".") || name == "node_modules") {
            if (it->is_directory()) it.disable_recursion_pending();
            continue;
        }
        const std::string_view type = content_type_of(path);
        if (type.empty() || !it->is_regular_file()) continue;
        if (files.files_.size() == MAX_FILES)
            throw std::runtime_error(dir.string() + " holds more than " + std::to_string(MAX_FILES) + " files to serve");
        std::string body = read_whole(path);
        files.total_bytes_ += body.size();
        if (files.total_bytes_ > max_total_bytes)
            throw std::runtime_error(dir.string() + " holds more than " + std::to_string(max_total_bytes) +
                                     " bytes of files to serve: is it the dashboard's directory?");
        const std::string url = std::string(UI_PREFIX) + "/" + fs::relative(path, dir).generic_string();
        files.files_.emplace(url, UiFile{std::move(body), type});
    }
    if (!files.files_.contains(std::string(UI_PREFIX) + "/index.html"))
        throw std::runtime_error(dir.string() + " has no index.html (the dashboard's files: ui/ of the source tree)");
    return files;
}

const UiFile* UiFiles::find(std::string_view path) const {
    if (path == "/ui/") path = "/ui/index.html";
    const auto it = files_.find(path);
    return it == files_.end() ? nullptr : &it->second;
}

bool is_ui_path(std::string_view path) {
    return path.starts_with(UI_PREFIX) && (path.size() == UI_PREFIX.size() || path[UI_PREFIX.size()] == '/');
}

HttpResult ui_result(const UiFiles& files, std::string_view method, std::string_view path) {
    HttpResult r;
    if (method != "GET") {
        r = error_result(errors::METHOD_NOT_ALLOWED, std::string(method) + " is not allowed on the dashboard's files");
        r.headers.emplace_back("Allow", "GET");
    } else if (path == UI_PREFIX) {
        r.status = 302;
        r.content_type = "text/plain; charset=utf-8";
        r.headers.emplace_back("Location", std::string(UI_PREFIX) + "/");
    } else if (const UiFile* file = files.find(path)) {
        r.body = file->body;
        r.content_type = file->content_type;
    } else {
        r = error_result(errors::NOT_FOUND, "no such file of the dashboard");
    }
    add_strict_headers(r);
    return r;
}

}  // namespace sluice::api
