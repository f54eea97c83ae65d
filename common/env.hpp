// Reading configuration from the environment, the same way in every Sluice main: an unset or
// empty variable means the default; a set one must parse and lie in its range, or the process
// stops at once (exit status 2) with a message naming the variable, the range and the value.
// Only mains call these, before any thread starts.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sluice {

// Exit status of a process stopped by a bad configuration value.
inline constexpr int CONFIG_ERROR_EXIT = 2;

// The value of `name`, or `fallback` when it is unset or empty.
std::string env_string(const char* name, std::string fallback);

// The integer value of `name` in [min, max], or `fallback` when it is unset or empty.
long long env_int(const char* name, long long min, long long max, long long fallback);

// A size limit in bytes, 1 byte .. 1 GiB, or `fallback` when unset or empty.
std::size_t env_bytes(const char* name, std::size_t fallback);

// The same in milliseconds.
std::chrono::milliseconds env_ms(const char* name, std::chrono::milliseconds min, std::chrono::milliseconds max,
                                 std::chrono::milliseconds fallback);

// A comma-separated list (blanks around items ignored, empty items dropped); empty when unset.
std::vector<std::string> env_list(const char* name);

// The contents of the file that `name` names, trailing newlines removed (how a secret such as
// a password reaches a process: a file the service user alone can read, never a command
// line, which every user on the host can see); "" when `name` is unset or empty. A file that
// is missing, unreadable or empty stops the process like a bad value.
std::string env_secret_file(const char* name);

// Stops the process the way a bad value does: prints "sluice: {name} {problem}" and exits 2.
[[noreturn]] void env_fail(const char* name, const std::string& problem);

}  // namespace sluice
