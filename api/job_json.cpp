// Job records and events as clients see them (see job_json.hpp).
#include "job_json.hpp"

#include <msgpack.hpp>

#include <charconv>
#include <ctime>

namespace sluice::api {
namespace {

// The whole of `text` as a number of type T; nullopt when it is empty or anything else.
template <class T>
std::optional<T> parse_number(std::string_view text) {
    T value{};
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
    return value;
}

std::optional<std::int64_t> field_int(const std::string* text) {
    if (!text) return std::nullopt;
    return parse_number<std::int64_t>(*text);
}

// Object members for job bodies: each writes `key` and its value, null when there is none.
void text_member(JsonWriter& w, std::string_view key, const std::string* text) {
    w.key(key);
    if (text) {
        w.string(*text);
    } else {
        w.null();
    }
}

void int_member(JsonWriter& w, std::string_view key, std::optional<std::int64_t> value) {
    w.key(key);
    if (value) {
        w.integer(*value);
    } else {
        w.null();
    }
}

// A timestamp in ms as ISO-8601; absent or not after the epoch (0 is "not started" / "not
// ended", never a real time) gives null.
void time_member(JsonWriter& w, std::string_view key, std::optional<std::int64_t> ms) {
    w.key(key);
    if (ms && *ms > 0) {
        w.string(iso8601_ms(*ms));
    } else {
        w.null();
    }
}



}  // namespace

std::string dump_json(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string iso8601_ms(std::int64_t ms) {
    std::int64_t seconds = ms / 1000;
    std::int64_t millis = ms % 1000;
    if (millis < 0) {
        millis += 1000;
        seconds -= 1;
    }
    const std::time_t t = static_cast<std::time_t>(seconds);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char stamp[48];
    const std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    char out[64];
    std::snprintf(out, sizeof out, "%.*s.%03dZ", static_cast<int>(n), stamp, static_cast<int>(millis));
    return out;
}

bool is_terminal_status(std::string_view status) {
    return status == "succeeded" || status == "failed" || status == "canceled";
}

void msgpack_member(JsonWriter& w, std::string_view key, const std::string* bytes) {
    w.key(key);
    const json value = bytes ? msgpack_to_json(*bytes) : json(nullptr);
    if (value.is_null()) {
        w.null();
    } else {
        w.raw(dump_json(value));
    }
}

json msgpack_to_json(std::string_view bytes) {
    if (bytes.empty()) return nullptr;
    json value = json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true,
                                    /*allow_exceptions=*/false);
    if (value.is_discarded()) return nullptr;
    return value;
}

const std::string* hash_field(const JobHash& hash, std::string_view name) {
    for (const auto& [field, value] : hash)
        if (field == name) return value.empty() ? nullptr : &value;
    return nullptr;
}

namespace {

// The members every job body has (all but `result` and `history`).
void job_members(JsonWriter& w, const JobHash& hash) {
    for (const char* name : {"id", "type", "tenant", "key_id", "status"}) text_member(w, name, hash_field(hash, name));
    for (const char* name : {"priority", "max_attempts", "timeout_s", "attempts"})
        int_member(w, name, field_int(hash_field(hash, name)));
    time_member(w, "created_at", field_int(hash_field(hash, "created_ms")));
    time_member(w, "started_at", field_int(hash_field(hash, "started_ms")));
    time_member(w, "finished_at", field_int(hash_field(hash, "finished_ms")));
    time_member(w, "run_at", field_int(hash_field(hash, "run_at_ms")));
    time_member(w, "expire_at", field_int(hash_field(hash, "expire_at_ms")));
    text_member(w, "error", hash_field(hash, "error"));
    text_member(w, "error_code", hash_field(hash, "error_code"));
    text_member(w, "traceparent", hash_field(hash, "traceparent"));
    // Only a job that joined another (options.dedupe) has it: the other bodies stay as they were.
    if (const std::string* joined = hash_field(hash, "joined")) text_member(w, "joined", joined);
    // Only a flow's jobs have them: a child its parent and on_failure, a parent its children.
    for (const char* name : {"parent", "on_failure"})
        if (const std::string* value = hash_field(hash, name)) w.key(name).string(*value);
    if (const std::string* children = hash_field(hash, "children")) {
        w.key("children").begin_array();
        for (std::size_t start = 0; start <= children->size();) {
            const std::size_t comma = std::min(children->find(',', start), children->size());
            w.string(std::string_view(*children).substr(start, comma - start));
            start = comma + 1;
        }
        w.end_array();
    }
    w.key("redeliveries").integer(field_int(hash_field(hash, "redeliveries")).value_or(0));
    w.key("rate_limited").integer(field_int(hash_field(hash, "rate_limited")).value_or(0));
    // Only a job a cron schedule fired has them: which schedule, the tick it fired for, and how
    // many earlier ticks it stands for (missed while no broker led, `missed: run_once`).
    if (const std::string* schedule = hash_field(hash, "schedule_id")) {
        w.key("schedule_id").string(*schedule);
        time_member(w, "schedule_tick", field_int(hash_field(hash, "schedule_tick")));
        w.key("missed_ticks").integer(field_int(hash_field(hash, "missed_ticks")).value_or(0));
    }
}

}  // namespace

std::string job_json(const JobHash& hash, const std::vector<std::string>& history,
                     const std::optional<QueuePlace>& place) {
    JsonWriter w;
    w.begin_object();
    job_members(w, hash);
    if (place) {
        w.key("queue_position").integer(place->position);
        int_member(w, "eta_s", place->eta_s);
    }
    msgpack_member(w, "result", hash_field(hash, "result"));
    w.key("history").raw(history_json(history));
    w.end_object();
    return w.take();
}

std::string job_summary_json(const JobHash& hash) {
    JsonWriter w;
    w.begin_object();
    job_members(w, hash);
    w.end_object();
    return w.take();
}

std::optional<std::string> history_entry_json(std::string_view entry) {
    if (entry.empty()) return std::nullopt;
    const json v = json::from_msgpack(entry.begin(), entry.end(), /*strict=*/true,
                                      /*allow_exceptions=*/false);
    if (v.is_discarded() || !v.is_array() || v.size() < 6) return std::nullopt;
    // Lenient where a Lua encoder might differ (a whole float for a time, nil for no error),
    // strict about the shape.
    auto is_time = [](const json& t) { return t.is_number() || t.is_null(); };
    const bool attempt_ok = v[0].is_number_unsigned() ||
                            (v[0].is_number_integer() && v[0].get<std::int64_t>() >= 0);
    if (!attempt_ok || !v[1].is_string() || !is_time(v[2]) || !is_time(v[3]) ||
        !v[4].is_string() || !(v[5].is_string() || v[5].is_null()))
        return std::nullopt;
    auto ms_of = [](const json& t) -> std::int64_t {
        if (t.is_number_unsigned()) {
            const auto u = t.get<std::uint64_t>();
            return u > static_cast<std::uint64_t>(INT64_MAX) ? 0 : static_cast<std::int64_t>(u);
        }
        if (t.is_number_integer()) return t.get<std::int64_t>();
        if (t.is_number_float()) {
            const double d = t.get<double>();
            return d > 0 && d < 9.0e15 ? static_cast<std::int64_t>(d) : 0;  // NaN fails both
        }
        return 0;
    };
    const std::string* error = v[5].is_string() ? &v[5].get_ref<const std::string&>() : nullptr;
    JsonWriter w;
    w.begin_object();
    int_member(w, "attempt", static_cast<std::int64_t>(v[0].get<std::uint64_t>()));
    text_member(w, "worker", &v[1].get_ref<const std::string&>());
    time_member(w, "started_at", ms_of(v[2]));
    time_member(w, "finished_at", ms_of(v[3]));
    text_member(w, "outcome", &v[4].get_ref<const std::string&>());
    text_member(w, "error", error && !error->empty() ? error : nullptr);
    w.end_object();
    return w.take();
}

std::string history_json(const std::vector<std::string>& entries) {
    JsonWriter w;
    w.begin_array();
    for (const auto& entry : entries)
        if (auto decoded = history_entry_json(entry)) w.raw(*decoded);
    w.end_array();
    return w.take();
}

const std::string* event_field(const EventEntry& entry, std::string_view name) {
    for (const auto& [key, value] : entry.fields)
        if (key == name) return &value;
    return nullptr;
}

std::optional<std::uint64_t> event_seq(const EventEntry& entry) {
    if (const std::string* seq = event_field(entry, "seq")) {
        if (auto v = parse_unsigned(*seq)) return v;
    }
    return parse_unsigned(std::string_view(entry.id).substr(0, entry.id.find('-')));
}

std::optional<Notice> parse_notice(std::string_view payload) {
    try {
        // Every element takes at least a byte: no count in a valid notice exceeds its size.
        const msgpack::unpack_limit limit(payload.size(), 0, payload.size(), payload.size(), 0, 2);
        std::size_t offset = 0;
        const msgpack::object_handle handle =
            msgpack::unpack(payload.data(), payload.size(), offset, nullptr, nullptr, limit);
        const msgpack::object& obj = handle.get();
        if (offset != payload.size() || obj.type != msgpack::type::ARRAY || obj.via.array.size == 0)
            return std::nullopt;
        std::vector<std::string> parts;
        parts.reserve(obj.via.array.size);
        for (const msgpack::object& part : std::span(obj.via.array.ptr, obj.via.array.size)) {
            if (part.type == msgpack::type::STR)
                parts.emplace_back(part.via.str.ptr, part.via.str.size);
            else if (part.type == msgpack::type::BIN)
                parts.emplace_back(part.via.bin.ptr, part.via.bin.size);
            else if (part.type == msgpack::type::POSITIVE_INTEGER)
                parts.push_back(std::to_string(part.via.u64));
            else
                return std::nullopt;
        }
        Notice notice{std::move(parts[0]), std::nullopt};
        if (parts.size() >= 2 && parts.size() % 2 == 0) {
            EventEntry event{std::move(parts[1]), {}};
            for (std::size_t i = 2; i < parts.size(); i += 2)
                event.fields.emplace_back(std::move(parts[i]), std::move(parts[i + 1]));
            notice.event = std::move(event);
        }
        return notice;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

void write_event_members(JsonWriter& w, std::string_view job_id, const EventEntry& entry) {
    const std::uint64_t seq = event_seq(entry).value_or(0);
    const std::string* event = event_field(entry, "event");
    w.key("job_id").string(job_id);
    w.key("seq").integer(static_cast<std::int64_t>(seq));
    w.key("event").string(event ? std::string_view(*event) : "message");
    time_member(w, "time", field_int(event_field(entry, "ts")));
    if (auto attempt = field_int(event_field(entry, "attempt"))) int_member(w, "attempt", attempt);
    for (const char* name : {"worker", "message", "data", "error", "code", "child", "type", "status", "children"}) {
        if (const std::string* v = event_field(entry, name)) text_member(w, name, v);
    }
    if (const std::string* v = event_field(entry, "fraction")) {
        if (auto f = parse_number<double>(*v)) w.key("fraction").number(*f);
    }
    if (const std::string* v = event_field(entry, "result")) msgpack_member(w, "result", v);
}

std::string format_sse_event(std::string_view job_id, const EventEntry& entry) {
    const std::uint64_t seq = event_seq(entry).value_or(0);
    const std::string* event = event_field(entry, "event");
    const std::string_view name = event ? std::string_view(*event) : "message";
    JsonWriter w;
    w.begin_object();
    write_event_members(w, job_id, entry);
    w.end_object();
    // The event name goes on an SSE line: keep line breaks out of it.
    std::string text = "id: " + std::to_string(seq) + "\nevent: ";
    for (char c : name) text += (c == '\n' || c == '\r') ? ' ' : c;
    text += "\ndata: ";
    text += w.take();
    text += "\n\n";
    return text;
}

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    if (text.empty()) return std::nullopt;
    for (char c : text)
        if (c < '0' || c > '9') return std::nullopt;
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
    return value;
}

}  // namespace sluice::api
