// CURVE key files and the local-endpoint rule (common/curve.hpp), and the broker's rate limit
// of refused-key log lines (broker/refusal_log.hpp).
#include "curve.hpp"
#include "refusal_log.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

using namespace sluice;

namespace {

// A file with `text` under /tmp, removed when the test ends.
struct TempFile {
    explicit TempFile(const std::string& text) {
        // mkstemp makes a unique name of a template that ends in six X.
        std::string name = "/tmp/sluice-curve-" + std::string(6, 'X');
        const int fd = mkstemp(name.data());
        REQUIRE(fd >= 0);
        close(fd);
        path = name;
        std::ofstream(path) << text;
    }
    ~TempFile() { std::remove(path.c_str()); }
    std::string path;
};

struct Pair {
    Pair() { REQUIRE(zmq_curve_keypair(public_key, secret_key) == 0); }
    char public_key[41];
    char secret_key[41];
};

}  // namespace

TEST_CASE("a key file holds one Z85 key; comments and blank lines are skipped") {
    Pair pair;
    TempFile file(std::string("# a comment\n\n") + pair.secret_key + "  \r\n");
    CHECK(curve::read_key(file.path) == pair.secret_key);
    CHECK(curve::public_key_of(curve::read_key(file.path)) == pair.public_key);
}

TEST_CASE("a bad key file says what is wrong") {
    Pair a, b;
    auto problem = [](const std::string& text) {
        TempFile file(text);
        try {
            curve::read_key(file.path);
        } catch (const curve::KeyFileError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(problem("# nothing\n").find("holds 0 keys") != std::string::npos);
    CHECK(problem(std::string(a.public_key) + "\n" + b.public_key + "\n").find("holds 2 keys") != std::string::npos);
    CHECK(problem(std::string(a.public_key).substr(1) + "\n").find("line 1 is not a key") != std::string::npos);
    CHECK(problem("#\n" + std::string(39, 'a') + "~\n").find("line 2 is not a key") != std::string::npos);
    CHECK_THROWS_AS(curve::read_key("/nonexistent/sluice.key"), curve::KeyFileError);
}

TEST_CASE("an allow-list holds any number of keys") {
    Pair a, b;
    TempFile file(std::string("# workers\n") + a.public_key + "\n\n# host two\n" + b.public_key + "\n");
    CHECK(curve::read_allow_list(file.path) == std::set<std::string>{a.public_key, b.public_key});
    TempFile empty("# nobody yet\n");
    CHECK(curve::read_allow_list(empty.path).empty());
}

TEST_CASE("z85_of encodes a binary key as zmq does") {
    Pair pair;
    std::uint8_t binary[32];
    REQUIRE(zmq_z85_decode(binary, pair.public_key) != nullptr);
    CHECK(curve::z85_of(std::string_view(reinterpret_cast<const char*>(binary), 32)) == pair.public_key);
}

TEST_CASE("only ipc, inproc and loopback tcp endpoints are local") {
    for (const char* endpoint : {"ipc:///run/sluice/workers", "inproc://x", "tcp://127.0.0.1:5556", "tcp://127.1.2.3:1",
                                 "tcp://localhost:5556", "tcp://[::1]:5556", "tcp://127.0.0.1:*",
                                 "tcp://10.0.0.1:0;127.0.0.1:5556"})
        CHECK_MESSAGE(curve::local_endpoint(endpoint), endpoint);
    for (const char* endpoint : {"tcp://0.0.0.0:5556", "tcp://*:5556", "tcp://10.0.0.2:5556", "tcp://[::]:5556",
                                 "tcp://eth0:5556", "tcp://127.evil.example:5556", "tcp://broker.example:5556",
                                 "ws://127.0.0.1:5556", "tcp://127.0.0.1:0;10.0.0.2:5556"})
        CHECK_MESSAGE(!curve::local_endpoint(endpoint), endpoint);
}

TEST_CASE("a refused key is logged once per window, at most MAX_KEYS keys, the rest counted") {
    using broker::RefusalLog;
    RefusalLog log;
    const auto start = broker::Clock::time_point{} + std::chrono::hours(1);
    CHECK(log.note("A", start).log_key);
    CHECK_FALSE(log.note("A", start + std::chrono::seconds(1)).log_key);
    CHECK(log.note("B", start + std::chrono::seconds(2)).log_key);
    for (std::size_t i = 0; i < RefusalLog::MAX_KEYS; ++i) log.note("fresh" + std::to_string(i), start);
    CHECK_FALSE(log.note("one too many", start).log_key);

    const RefusalLog::Verdict later = log.note("A", start + RefusalLog::WINDOW);
    CHECK(later.log_key);
    // A again, 2 fresh keys past the cap, and "one too many".
    CHECK(later.unlogged == 1 + 2 + 1);
    CHECK(log.note("C", start + RefusalLog::WINDOW).unlogged == 0);
}
