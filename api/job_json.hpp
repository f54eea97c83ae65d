// Job records and events as clients see them: the job body of GET /v1/jobs/{id} built from
// its Redis hash and attempt history, events as SSE text, and the notices that carry them.
// Pure and thread-safe, like request.hpp.
#pragma once

#include "json_writer.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::api {

using json = nlohmann::json;

// Serialises `value` compactly; invalid UTF-8 in strings is replaced, never thrown.
std::string dump_json(const json& value);

// Formats ms since the epoch as ISO-8601 UTC with milliseconds: 2026-01-02T03:04:05.678Z.
std::string iso8601_ms(std::int64_t ms);

// Returns true for succeeded, failed and canceled.
bool is_terminal_status(std::string_view status);

// Decodes a msgpack value into JSON; null when `bytes` is empty or does not decode.
json msgpack_to_json(std::string_view bytes);

// Writes member `key`: the msgpack value `bytes` as JSON; null when it is absent, empty or does
// not decode.
void msgpack_member(JsonWriter& w, std::string_view key, const std::string* bytes);

// The fields of a sluice:job:{id} hash that exist, as read from Redis.
using JobHash = std::vector<std::pair<std::string, std::string>>;

// Returns the hash field `name`, or nullptr when it is absent or empty.
const std::string* hash_field(const JobHash& hash, std::string_view name);

// Where a queued job stands: its 0-based place in its type's queue (priority order, every
// tenant's jobs counted) and an estimate of the seconds until it starts (nullopt: no basis).
struct QueuePlace {
    std::int64_t position = 0;
    std::optional<std::int64_t> eta_s;
};

// The job body of GET /v1/jobs/{id} (JSON text), from the fields of the sluice:job:{id} hash
// and the entries of its sluice:history:{id} list (oldest first); with `place`, its
// queue_position and eta_s too.
std::string job_json(const JobHash& hash, const std::vector<std::string>& history = {},
                     const std::optional<QueuePlace>& place = std::nullopt);

// The same without `result` and `history`: a job as GET /v1/jobs lists it (a few hundred
// bytes, whatever the job's result).
std::string job_summary_json(const JobHash& hash);

// Decodes one sluice:history:{id} entry, a msgpack array [attempt u32, worker str, started_ms
// i64, ended_ms i64, outcome str, error str], into the JSON object {"attempt", "worker",
// "started_at", "finished_at", "outcome", "error"} (times ISO-8601 or null, error null when
// empty). nullopt when the entry does not decode as that (extra trailing elements are ignored).
std::optional<std::string> history_entry_json(std::string_view entry);

// The history array of a job body (JSON text): every entry that decodes, in order; bad ones
// are skipped.
std::string history_json(const std::vector<std::string>& entries);

// One entry of the sluice:events:{id} stream as XRANGE returns it.
struct EventEntry {
    std::string id;  // "{seq}-1"
    std::vector<std::pair<std::string, std::string>> fields;
};

// The sequence number of an entry: its `seq` field, else the part of its id before '-'.
std::optional<std::uint64_t> event_seq(const EventEntry& entry);

// A message of the sluice:notify channel (PROTOCOL.md): the job that has a new event, and the
// event itself unless it was too big to travel in the notice.
struct Notice {
    std::string job_id;
    std::optional<EventEntry> event;
};

// Decodes a notice; nullopt when `payload` is not a msgpack array of strings (and integers)
// starting with the job id. Never throws.
std::optional<Notice> parse_notice(std::string_view payload);

// Returns the value of field `name` of `entry`, or nullptr.
const std::string* event_field(const EventEntry& entry, std::string_view name);

// Writes the members of one entry as clients see it, into an object `w` has open: job_id, seq,
// event, time, and those of attempt, worker, message, data, error, fraction and result it has.
// An SSE message's data and a WebSocket's event message are both made of these.
void write_event_members(JsonWriter& w, std::string_view job_id, const EventEntry& entry);

// Formats one entry as an SSE message: "id: {seq}\nevent: {event}\ndata: {json}\n\n", the data
// an object of write_event_members().
std::string format_sse_event(std::string_view job_id, const EventEntry& entry);

// Parses a non-negative decimal integer (a Last-Event-ID, ?wait=, ?limit=), blanks around it
// allowed. nullopt when it is not one or does not fit 64 bits.
std::optional<std::uint64_t> parse_unsigned(std::string_view text);

}  // namespace sluice::api
