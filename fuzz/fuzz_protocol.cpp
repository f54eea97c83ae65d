// libFuzzer target: the msgpack message decoder. The first byte picks a message type, the rest
// is its body. Whatever the bytes, decoding must not crash, and a decoded message must
// re-encode to bytes that decode and re-encode to the very same bytes.
#include "protocol.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace sluice::proto;

namespace {

template <class T>
void check(std::string_view body) {
    auto first = decode_body<T>(body);
    if (!first) return;
    const std::string encoded = encode_body(*first);
    auto second = decode_body<T>(encoded);
    if (!second || encode_body(*second) != encoded) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 15) {
        case 0: check<Submit>(body); break;
        case 1: check<Cancel>(body); break;
        case 2: check<Retry>(body); break;
        case 3: check<Ping>(body); break;
        case 4: check<Reply>(body); break;
        case 5: check<Ready>(body); break;
        case 6: check<Job>(body); break;
        case 7: check<Progress>(body); break;
        case 8: check<Chunk>(body); break;
        case 9: check<Result>(body); break;
        case 10: check<Failure>(body); break;
        case 11: check<CancelJob>(body); break;
        case 12: check<Canceled>(body); break;
        case 13: check<Heartbeat>(body); break;
        default: check<Disconnect>(body); break;
    }
    return 0;
}
