// One-line logging to stderr for every Sluice process: "2026-11-24T05:36:20.123Z INFO broker: ...".
// Thread-safe: each line is written with a single write call.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace sluice::log {

enum class Level { DEBUG, INFO, WARN, ERROR };

// Sets the component name printed on every line and the lowest level that is printed.
void init(std::string_view component, Level min_level = Level::INFO);

// Parses "debug", "info", "warn" or "error"; returns INFO for anything else.
Level parse_level(std::string_view name);

void write(Level level, std::string_view message);

template <class... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::INFO, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::WARN, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::ERROR, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::DEBUG, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace sluice::log
