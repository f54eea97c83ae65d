// echo and sleep (see native_tasks.hpp).
#include "native_tasks.hpp"

#include <fmt/format.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <string_view>

namespace sluice::worker::tasks {

JobResult echo(JobContext& ctx) { return JobResult::success(ctx.input()); }

namespace {

// Reads "ms" from the sleep input; returns the value or a message saying what is wrong.
std::variant<std::int64_t, std::string> parse_sleep_ms(const JobContext& ctx) {
    auto handle = ctx.input_object();
    if (!handle) return std::string("input is not valid msgpack");
    const msgpack::object& obj = handle->get();
    if (obj.type != msgpack::type::MAP)
        return std::string("input must be a map like {\"ms\": 100}");
    for (std::uint32_t i = 0; i < obj.via.map.size; ++i) {
        const msgpack::object_kv& kv = obj.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR ||
            std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) != "ms")
            continue;
        if (kv.val.type == msgpack::type::NEGATIVE_INTEGER)
            return std::string("\"ms\" must be >= 0");
        if (kv.val.type != msgpack::type::POSITIVE_INTEGER)
            return std::string("\"ms\" must be an integer number of milliseconds");
        if (kv.val.via.u64 > static_cast<std::uint64_t>(MAX_SLEEP_MS))
            return fmt::format("\"ms\" must be at most {} (24 h), got {}", MAX_SLEEP_MS,
                               kv.val.via.u64);
        return static_cast<std::int64_t>(kv.val.via.u64);
    }
    return std::string("input needs an integer \"ms\" field, like {\"ms\": 100}");
}

}  // namespace

JobResult sleep(JobContext& ctx) {
    auto parsed = parse_sleep_ms(ctx);
    if (auto* error = std::get_if<std::string>(&parsed)) return JobResult::failure(*error, false);
    const std::int64_t ms = std::get<std::int64_t>(parsed);

    // Wait on a condition variable tied to the stop token: a cancel wakes us at once instead of
    // at the end of a polling step.
    constexpr int STEPS = 10;
    std::mutex mutex;
    std::condition_variable_any cv;
    const auto start = Clock::now();
    std::stop_token stop = ctx.stop_token();
    for (int step = 1; step <= STEPS && ms > 0; ++step) {
        const auto until = start + std::chrono::milliseconds(ms * step / STEPS);
        std::unique_lock lock(mutex);
        cv.wait_until(lock, stop, until, [] { return false; });
        if (stop.stop_requested()) return JobResult::failure("canceled", false);
        lock.unlock();
        ctx.progress(static_cast<double>(step) / STEPS,
                     fmt::format("slept {} of {} ms", ms * step / STEPS, ms));
    }

    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> packer(buffer);
    packer.pack_map(1);
    packer.pack(std::string_view("slept_ms"));
    packer.pack(ms);
    return JobResult::success(proto::Bytes(buffer.data(), buffer.data() + buffer.size()));
}

void register_all(Worker& worker) {
    worker.register_handler("echo", echo);
    worker.register_handler("sleep", sleep);
}

}  // namespace sluice::worker::tasks
