// Timestamped stderr logging (see log.hpp).
#include "log.hpp"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <string>

namespace sluice::log {
namespace {
std::string component_ = "sluice";
Level min_level_ = Level::INFO;

const char* level_name(Level level) {
    switch (level) {
        case Level::DEBUG: return "DEBUG";
        case Level::INFO: return "INFO";
        case Level::WARN: return "WARN";
        case Level::ERROR: return "ERROR";
    }
    return "?";
}
}  // namespace

void init(std::string_view component, Level min_level) {
    component_ = std::string(component);
    min_level_ = min_level;
}

Level parse_level(std::string_view name) {
    if (name == "debug") return Level::DEBUG;
    if (name == "warn") return Level::WARN;
    if (name == "error") return Level::ERROR;
    return Level::INFO;
}

void write(Level level, std::string_view message) {
    if (level < min_level_) return;
    const auto now = std::chrono::system_clock::now();
    const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    std::string line = fmt::format("{}.{:03}Z {} {}: {}\n", stamp, millis, level_name(level),
                                   component_, message);
    (void)::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace sluice::log
