// libFuzzer target: the HTTP-to-job conversion of the api (POST /v1/jobs body and
// Idempotency-Key header -> SUBMIT). Input: a header value, a NUL byte, then the body.
// Whatever the bytes, validation answers a value (never throws or crashes); an accepted
// request yields a SUBMIT within the shared limits the broker checks again (common/limits.hpp)
// that survives the wire codec and whose input decodes back to JSON.
#include "limits.hpp"
#include "names.hpp"
#include "protocol.hpp"
#include "request.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <variant>

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    std::optional<std::string_view> key;
    std::string_view body = bytes;
    if (const auto nul = bytes.find('\0'); nul != std::string_view::npos) {
        key = bytes.substr(0, nul);
        body = bytes.substr(nul + 1);
        if (api::check_idempotency_key(*key)) key.reset();
    }
    auto checked = api::parse_submit(body, "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10", key);
    const auto* accepted = std::get_if<proto::Submit>(&checked);
    if (accepted == nullptr) return 0;
    const proto::Submit& submit = *accepted;
    if (submit.type.empty() || submit.type.size() > limits::MAX_TYPE_NAME ||
        submit.idempotency_key.size() > limits::MAX_IDEMPOTENCY_KEY ||
        !valid_concurrency(submit.concurrency_key, submit.concurrency_limit))
        std::abort();
    // Its times are ones the broker takes (broker/api_side.cpp, submit_problem).
    const auto now = static_cast<std::uint64_t>(api::wall_now_ms());
    const auto ahead = static_cast<std::uint64_t>(limits::MAX_SCHEDULE_AHEAD_MS);
    const auto expiry = static_cast<std::uint64_t>(limits::EXPIRE_AFTER_MS_MAX);
    if (submit.run_at_ms > now + ahead ||
        (submit.expire_at_ms != 0 && (submit.expire_at_ms <= submit.run_at_ms ||
                                      submit.expire_at_ms > std::max(submit.run_at_ms, now) + expiry)))
        std::abort();
    auto wire = proto::decode_body<proto::Submit>(proto::encode_body(submit));
    if (!wire || wire->input != submit.input || wire->type != submit.type) std::abort();
    (void)api::msgpack_to_json(std::string_view(submit.input.data(), submit.input.size()));
    if (key && api::request_hash(submit).size() != 64) std::abort();
    return 0;
}
