// libFuzzer target: a (schema, input) pair for the job input validator (api/json_schema.hpp),
// the two JSON texts separated by the first NUL byte. Whatever the bytes, compiling answers a
// schema or a reason, and validating answers a verdict within its bounds (never throws, crashes
// or recurses without end); an INVALID verdict names a JSON Pointer whose parent is in the input.
#include "json_schema.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace sluice::api::json_schema;
using json = nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const std::size_t split = bytes.find('\0');
    const std::string_view schema_text = bytes.substr(0, split);
    const std::string_view input_text = split == std::string_view::npos ? "null" : bytes.substr(split + 1);
    auto compiled = compile(schema_text);
    if (auto* why = std::get_if<std::string>(&compiled)) {
        if (why->empty()) std::abort();
        return 0;
    }
    const auto input = parse_bounded(input_text);
    if (!input) return 0;
    const Verdict verdict = std::get<std::shared_ptr<const CompiledSchema>>(compiled)->validate(*input);
    if (verdict.kind != Verdict::INVALID) return 0;
    const std::string& path = verdict.failure.path;
    if (verdict.failure.message.empty() || (!path.empty() && path[0] != '/')) std::abort();
    if (!path.empty()) {
        const json::json_pointer pointer(path);
        if (!input->contains(pointer.parent_pointer())) std::abort();
    }
    return 0;
}
