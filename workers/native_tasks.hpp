// The native job types served by sluice-worker-native: `echo` and `sleep`.
// Handlers are thread-safe (no shared state); each runs on a worker pool thread.
#pragma once

#include "runtime.hpp"

#include <cstdint>

namespace sluice::worker::tasks {

// Longest `sleep` accepted: one day. Anything longer is almost surely a unit mistake (s vs ms).
inline constexpr std::int64_t MAX_SLEEP_MS = 24LL * 60 * 60 * 1000;

// echo: returns the input bytes unchanged.
JobResult echo(JobContext& ctx);

// sleep: input {"ms": N} (msgpack map, 0 <= N <= MAX_SLEEP_MS). Sleeps N ms, waking at once
// when the stop token fires, reports progress ten times on the way, and returns
// {"slept_ms": N}. Bad input is a non-retryable error naming what is wrong.
JobResult sleep(JobContext& ctx);

// Registers every native task on `worker` under its job type name.
void register_all(Worker& worker);

}  // namespace sluice::worker::tasks
