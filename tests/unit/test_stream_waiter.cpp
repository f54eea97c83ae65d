// StreamWaiter: an SSE stream's wake-ups. Whatever order notices come in while the stream waits,
// writes or has just been woken, news without its event must leave the stream reading Redis back.
#include "event_stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <doctest/doctest.h>

using namespace sluice::api;

namespace {

// A connected pair of sockets on the loopback: the stream's end and the client's.
struct SocketPair {
    asio::io_context ioc;
    tcp::socket server{ioc};
    tcp::socket client{ioc};

    SocketPair() {
        tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        client.connect(acceptor.local_endpoint());
        acceptor.accept(server);
    }
};

EventEntry event(std::uint64_t seq) {
    return {std::to_string(seq) + "-1", {{"event", "started"}, {"seq", std::to_string(seq)}}};
}

}  // namespace

TEST_CASE("news without its event that comes after an event, while the woken wait has not resumed, is read back") {
    SocketPair pair;
    StreamWaiter waiter(pair.server, std::chrono::seconds(5));
    bool resumed = false;
    asio::co_spawn(pair.ioc, [&]() -> awaitable<void> {
        co_await waiter.wait();
        resumed = true;
    }, asio::detached);
    pair.ioc.poll();
    REQUIRE(waiter.phase() == StreamWaiter::Phase::WAITING);

    // Two notices in one read of the subscription: both are handled before the stream resumes.
    waiter.wake_with(event(2));
    waiter.wake();
    pair.ioc.poll();
    REQUIRE(resumed);

    const StreamWaiter::Pushed pushed = waiter.take_pushed();
    CHECK(pushed.events.size() == 1);
    CHECK(pushed.read_back);
}

TEST_CASE("an event that came with its notice alone needs no read") {
    SocketPair pair;
    StreamWaiter waiter(pair.server, std::chrono::seconds(5));
    waiter.wake_with(event(2));
    const StreamWaiter::Pushed pushed = waiter.take_pushed();
    CHECK(pushed.events.size() == 1);
    CHECK_FALSE(pushed.read_back);
    CHECK(waiter.phase() == StreamWaiter::Phase::NEWS);
}

TEST_CASE("news while writing is kept for after the write") {
    SocketPair pair;
    StreamWaiter waiter(pair.server, std::chrono::seconds(5));
    bool written = false;
    asio::co_spawn(pair.ioc, [&]() -> awaitable<void> {
        written = co_await waiter.write("data: x\n\n");
    }, asio::detached);
    pair.ioc.poll_one();  // the coroutine starts and begins its write
    REQUIRE(waiter.phase() == StreamWaiter::Phase::WRITING);
    waiter.wake();
    pair.ioc.poll();
    REQUIRE(written);
    CHECK(waiter.phase() == StreamWaiter::Phase::NEWS);
    CHECK(waiter.take_pushed().read_back);
}

TEST_CASE("past its bound of held events the stream reads back instead") {
    SocketPair pair;
    StreamWaiter waiter(pair.server, std::chrono::seconds(5));
    for (std::uint64_t seq = 2; seq < 2 + 100; ++seq) waiter.wake_with(event(seq));
    const StreamWaiter::Pushed pushed = waiter.take_pushed();
    CHECK(pushed.events.size() < 100);
    CHECK(pushed.read_back);
}

TEST_CASE("the client hanging up ends the wait") {
    SocketPair pair;
    StreamWaiter waiter(pair.server, std::chrono::seconds(5));
    asio::co_spawn(pair.ioc, waiter.wait(), asio::detached);
    pair.ioc.poll();
    pair.client.close();
    pair.ioc.run_for(std::chrono::seconds(2));
    CHECK(waiter.phase() == StreamWaiter::Phase::HUNG_UP);
}
