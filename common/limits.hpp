// Limits shared by every part of Sluice that checks what it receives: the api (HTTP input),
// the broker (the same fields again, whoever sent them) and the fuzzers. One number each, so
// the parts cannot disagree. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::limits {

// Job type names: 1..128 characters of [A-Za-z0-9_.:-] (they become parts of Redis keys).
// python_workers/sluice/registry.py checks the same rule on the worker side.
inline constexpr std::size_t MAX_TYPE_NAME = 128;
// Job ids as the broker accepts them: 1..128 hex digits and '-' (the api makes UUIDs, 36).
inline constexpr std::size_t MAX_JOB_ID = 128;
// Idempotency-Key: 1..255 visible ASCII characters (0x21..0x7e), as Stripe and the IETF
// draft allow; longer keys would only bloat the Redis key built from it.
inline constexpr std::size_t MAX_IDEMPOTENCY_KEY = 255;
// Worker names as READY declares them are cut to this many characters, runtimes to RUNTIME.
inline constexpr std::size_t MAX_WORKER_NAME = 128;
inline constexpr std::size_t MAX_RUNTIME_NAME = 16;
// Concurrency a worker may declare in READY.
inline constexpr std::uint32_t MAX_WORKER_CONCURRENCY = 100000;
// Default largest HTTP request body, in bytes (SLUICE_API_MAX_BODY); past it 413.
inline constexpr std::size_t DEFAULT_MAX_BODY = 1024 * 1024;
// Default largest job input, in bytes of msgpack (SLUICE_API_MAX_INPUT_BYTES); past it 413.
inline constexpr std::size_t DEFAULT_MAX_INPUT = 512 * 1024;
// HTTP request header block; past it 431.
inline constexpr std::size_t MAX_HEADER_BYTES = 16 * 1024;

}  // namespace sluice::limits
