// SLUICE/1 message structs and their msgpack codec: the C++ side of schemas/messages.json.
// Pure data and (de)serialisation; no sockets here (see wire.hpp). All functions are thread-safe.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::proto {

// Frame 0 of every message: protocol name and version.
inline constexpr std::string_view SIGNATURE = "SLUICE/1";

// Heartbeat period on the backend socket, and how many silent periods make a peer dead.
// One second keeps a dead worker's jobs waiting at most ~3 s before they are handed out again.
inline constexpr int HEARTBEAT_INTERVAL_MS = 1000;
inline constexpr int HEARTBEAT_LIVENESS = 3;

// Command ids are hand-numbered and never reused (schemas/messages.json).
enum class Command : std::uint8_t {
    SUBMIT = 1,
    CANCEL = 2,
    PING = 3,
    REPLY = 4,
    RETRY = 5,
    FLOW = 6,
    READY = 16,
    JOB = 17,
    PROGRESS = 18,
    CHUNK = 19,
    RESULT = 20,
    FAILURE = 21,
    CANCEL_JOB = 22,
    CANCELED = 23,
    HEARTBEAT = 24,
    DISCONNECT = 25,
    SPAWN = 26,
    RATE_LIMITED = 27,
};

// Returns the command's name for logs ("SUBMIT"), or nullptr for an unknown id.
const char* command_name(std::uint8_t id);

// An opaque msgpack-encoded value carried as msgpack bin (job input and result).
using Bytes = std::vector<char>;

struct Submit {
    static constexpr Command command = Command::SUBMIT;
    std::uint64_t req_id = 0;
    std::string job_id;
    std::string tenant;
    std::string type;
    Bytes input;
    std::int64_t priority = 0;
    std::uint32_t max_attempts = 0;
    std::uint32_t timeout_s = 0;
    std::string idempotency_key;  // empty: none
    std::string request_hash;     // digest of the request, to tell a replay from a conflict
    std::string key_id;           // the API key that submitted it; empty in open mode
    std::uint32_t submits_per_s = 0;  // the key's submit rate limit (the broker keeps it); 0: none
    std::string concurrency_key;  // empty: none
    std::uint32_t concurrency_limit = 0;  // jobs sharing the key that may run at once; 0 without one
    // options.on_disconnect "cancel": canceled once nobody has followed it for this long; 0: never
    std::uint32_t disconnect_grace_ms = 0;
    std::uint64_t run_at_ms = 0;     // when the job is due (ms since the epoch); 0: now
    std::uint64_t expire_at_ms = 0;  // when a job not started by then fails as expired; 0: never
    std::string webhook_url;                  // options.webhook.url; empty: none
    std::vector<std::string> webhook_events;  // the lifecycle events it wants; empty without a url
    std::string traceparent;  // W3C trace context of the api's submit span (trace_context.hpp)
    std::uint32_t cache_ttl_s = 0;  // options.cache_ttl_s: 0 none
    bool dedupe = false;  // options.dedupe: join an identical job already queued or running
    MSGPACK_DEFINE(req_id, job_id, tenant, type, input, priority, max_attempts, timeout_s,
                   idempotency_key, request_hash, key_id, submits_per_s, concurrency_key, concurrency_limit,
                   disconnect_grace_ms, run_at_ms, expire_at_ms, webhook_url, webhook_events, traceparent,
                   cache_ttl_s, dedupe)
};

// A flow (POST /v1/flows): a parent job that waits for its children. Each job is a SUBMIT body
// of its own (decoded with decode_body<Submit>, so every field is checked as for a SUBMIT; their
// req_ids are not used); `on_failure` is parallel to `children`: "fail_parent" or "ignore".
struct Flow {
    static constexpr Command command = Command::FLOW;
    std::uint64_t req_id = 0;
    Bytes parent;
    std::vector<Bytes> children;
    std::vector<std::string> on_failure;
    MSGPACK_DEFINE(req_id, parent, children, on_failure)
};

struct Cancel {
    static constexpr Command command = Command::CANCEL;
    std::uint64_t req_id = 0;
    std::string job_id;
    MSGPACK_DEFINE(req_id, job_id)
};

struct Retry {
    static constexpr Command command = Command::RETRY;
    std::uint64_t req_id = 0;
    std::string job_id;
    MSGPACK_DEFINE(req_id, job_id)
};

struct Ping {
    static constexpr Command command = Command::PING;
    std::uint64_t req_id = 0;
    MSGPACK_DEFINE(req_id)
};

struct Reply {
    static constexpr Command command = Command::REPLY;
    std::uint64_t req_id = 0;
    std::uint32_t status = 0;  // the HTTP status the api answers with
    std::string code;          // stable error code, empty on success
    std::string message;
    std::string job_id;
    std::string state;
    std::uint32_t retry_after_ms = 0;  // rate_limited: when the key may submit again
    bool cached = false;  // a submit answered by an earlier job's result (options.cache_ttl_s)
    std::string joined{};  // options.dedupe: the job of the same tenant the new job joined; empty: none
    MSGPACK_DEFINE(req_id, status, code, message, job_id, state, retry_after_ms, cached, joined)
};

struct Ready {
    static constexpr Command command = Command::READY;
    std::string worker_name;
    std::string runtime;
    std::vector<std::string> types;
    std::uint32_t concurrency = 0;
    // Parallel to `types`: each type's input JSON Schema as JSON text, "" for none (opaque to
    // the broker, which bounds and stores it; limits::MAX_SCHEMA_BYTES each).
    std::vector<std::string> schemas;
    // Parallel to `types` (token budgets, PROTOCOL.md): the model each type calls ("" for none),
    // and how the broker estimates a job's tokens before it runs: prompt bytes per token (0: the
    // prompt is not counted) and the completion tokens a job may make unless its input says
    // `max_tokens`.
    std::vector<std::string> models;
    std::vector<std::uint32_t> chars_per_token;
    std::vector<std::uint32_t> max_tokens;
    MSGPACK_DEFINE(worker_name, runtime, types, concurrency, schemas, models, chars_per_token, max_tokens)
};

struct Job {
    static constexpr Command command = Command::JOB;
    std::string job_id;
    std::string type;
    Bytes input;
    std::uint32_t attempt = 0;
    std::uint32_t timeout_s = 0;
    // W3C trace context the worker's spans for this attempt descend from; empty for none
    std::string traceparent;
    // A flow's parent: its children's outcomes, one msgpack array of maps {id, type, status,
    // result, error} in the order they were given; empty (no bytes) for any other job.
    Bytes children;
    MSGPACK_DEFINE(job_id, type, input, attempt, timeout_s, traceparent, children)
};

struct Progress {
    static constexpr Command command = Command::PROGRESS;
    std::string job_id;
    std::uint32_t attempt = 0;
    double fraction = 0;
    std::string message;
    MSGPACK_DEFINE(job_id, attempt, fraction, message)
};

struct Chunk {
    static constexpr Command command = Command::CHUNK;
    std::string job_id;
    std::uint32_t attempt = 0;
    std::string data;
    MSGPACK_DEFINE(job_id, attempt, data)
};

struct Result {
    static constexpr Command command = Command::RESULT;
    std::string job_id;
    std::uint32_t attempt = 0;
    Bytes result;
    // The model tokens the attempt used (streamed ones included); 0 and 0 for a job that
    // called no model.
    std::uint32_t prompt_tokens = 0;
    std::uint32_t completion_tokens = 0;
    MSGPACK_DEFINE(job_id, attempt, result, prompt_tokens, completion_tokens)
};

struct Failure {
    static constexpr Command command = Command::FAILURE;
    std::string job_id;
    std::uint32_t attempt = 0;
    std::string error;
    bool retryable = false;
    std::uint32_t prompt_tokens = 0;  // what the failed attempt used, as in Result
    std::uint32_t completion_tokens = 0;
    MSGPACK_DEFINE(job_id, attempt, error, retryable, prompt_tokens, completion_tokens)
};

struct CancelJob {
    static constexpr Command command = Command::CANCEL_JOB;
    std::string job_id;
    std::uint32_t attempt = 0;
    MSGPACK_DEFINE(job_id, attempt)
};

struct Canceled {
    static constexpr Command command = Command::CANCELED;
    std::string job_id;
    std::uint32_t attempt = 0;
    MSGPACK_DEFINE(job_id, attempt)
};

// The running attempt starts children (ctx.spawn) and ends: the job waits for them as a flow's
// parent, and runs again with their outcomes. types, inputs and on_failure are parallel.
struct Spawn {
    static constexpr Command command = Command::SPAWN;
    std::string job_id;
    std::uint32_t attempt = 0;
    std::vector<std::string> types;
    std::vector<Bytes> inputs;
    std::vector<std::string> on_failure;
    // The model tokens the spawning run used (as in Result).
    std::uint32_t prompt_tokens = 0;
    std::uint32_t completion_tokens = 0;
    MSGPACK_DEFINE(job_id, attempt, types, inputs, on_failure, prompt_tokens, completion_tokens)
};

// The model provider refused the attempt's call for now (HTTP 429): the job goes back to its
// queue without spending an attempt, and the model's dispatch pauses for retry_after_ms.
struct RateLimited {
    static constexpr Command command = Command::RATE_LIMITED;
    std::string job_id;
    std::uint32_t attempt = 0;
    std::uint32_t retry_after_ms = 0;
    std::string error;  // what the provider said, cut to MAX_ERROR_BYTES like a FAILURE's
    MSGPACK_DEFINE(job_id, attempt, retry_after_ms, error)
};

struct Heartbeat {
    static constexpr Command command = Command::HEARTBEAT;
    MSGPACK_DEFINE()
};

struct Disconnect {
    static constexpr Command command = Command::DISCONNECT;
    MSGPACK_DEFINE()
};

// Returns the msgpack body (frame 2) of `msg`.
template <class T>
std::string encode_body(const T& msg) {
    msgpack::sbuffer buffer;
    msgpack::pack(buffer, msg);
    return std::string(buffer.data(), buffer.size());
}

// Deepest nesting decode_body accepts; message fields are flat, opaque values travel as bin.
inline constexpr std::size_t MAX_DEPTH = 16;

// How many fields T has on the wire: the length of the array a default T encodes to. Worked
// out once per message type.
template <class T>
std::size_t field_count() {
    static const std::size_t count = [] {
        const std::string body = encode_body(T{});
        return msgpack::unpack(body.data(), body.size())->via.array.size;
    }();
    return count;
}

// Decodes a body into T. Returns nullopt when the bytes are not exactly one msgpack array whose
// first elements convert to T's fields (every one of them: msgpack-c alone would leave missing
// trailing fields at their defaults); never throws. Extra trailing fields are ignored so a
// newer peer can append fields without breaking an older one.
template <class T>
std::optional<T> decode_body(std::string_view bytes) noexcept {
    try {
        // Every element takes at least one byte, so no count in a valid body exceeds its size:
        // a hostile header claiming 4 billion entries fails here instead of allocating for them.
        const msgpack::unpack_limit limit(bytes.size(), bytes.size(), bytes.size(), bytes.size(),
                                          bytes.size(), MAX_DEPTH);
        std::size_t offset = 0;
        bool referenced = false;
        msgpack::object_handle handle =
            msgpack::unpack(bytes.data(), bytes.size(), offset, referenced, nullptr, nullptr, limit);
        if (offset != bytes.size()) return std::nullopt;
        const msgpack::object& obj = handle.get();
        if (obj.type != msgpack::type::ARRAY || obj.via.array.size < field_count<T>()) return std::nullopt;
        T msg;
        obj.convert(msg);
        return msg;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace sluice::proto
