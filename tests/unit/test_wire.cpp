// The three-frame envelope over real ZMQ sockets: good messages pass, broken framing is reported.
#include "wire.hpp"

#include <doctest/doctest.h>

#include <thread>

using namespace sluice::proto;

namespace {

struct Pair {
    zmq::context_t context{1};
    zmq::socket_t router{context, zmq::socket_type::router};
    zmq::socket_t dealer{context, zmq::socket_type::dealer};
    Pair() {
        router.set(zmq::sockopt::linger, 0);
        dealer.set(zmq::sockopt::linger, 0);
        router.bind("tcp://127.0.0.1:*");
        dealer.connect(router.get(zmq::sockopt::last_endpoint));
    }
    // Waits up to 2 s for the next message on the router.
    std::optional<Received> next() {
        zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, std::chrono::milliseconds(2000));
        return try_recv(router, true);
    }
};

}  // namespace

TEST_CASE("a message round-trips with its identity and command") {
    Pair pair;
    REQUIRE(send(pair.dealer, Ping{42}));
    auto received = pair.next();
    REQUIRE(received);
    REQUIRE(received->envelope);
    CHECK(received->envelope->command == static_cast<uint8_t>(Command::PING));
    CHECK_FALSE(received->envelope->identity.empty());
    auto ping = decode_body<Ping>(received->envelope->body);
    REQUIRE(ping);
    CHECK(ping->req_id == 42);

    REQUIRE(send(pair.router, Reply{42, 200, "", "", "", ""}, received->envelope->identity));
    zmq::pollitem_t item{pair.dealer.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(2000));
    auto back = try_recv(pair.dealer, false);
    REQUIRE(back);
    REQUIRE(back->envelope);
    CHECK(back->envelope->identity.empty());
    CHECK(decode_body<Reply>(back->envelope->body)->status == 200);
}

TEST_CASE("nothing waiting gives nullopt") {
    Pair pair;
    CHECK_FALSE(try_recv(pair.router, true).has_value());
}

TEST_CASE("broken framing is reported, not thrown") {
    Pair pair;
    SUBCASE("wrong frame count") {
        pair.dealer.send(zmq::str_buffer("SLUICE/1"), zmq::send_flags::none);
        auto r = pair.next();
        REQUIRE(r);
        CHECK_FALSE(r->envelope);
        CHECK(r->error.find("frames") != std::string::npos);
    }
    SUBCASE("wrong version") {
        REQUIRE(send_frames(pair.dealer, {}, Command::PING, encode_body(Ping{1})));
        auto first = pair.next();
        REQUIRE(first);
        CHECK(first->envelope);
        pair.dealer.send(zmq::str_buffer("SLUICE/9"), zmq::send_flags::sndmore);
        pair.dealer.send(zmq::str_buffer("\x03"), zmq::send_flags::sndmore);
        pair.dealer.send(zmq::str_buffer("\x91\x01"), zmq::send_flags::none);
        auto r = pair.next();
        REQUIRE(r);
        CHECK_FALSE(r->envelope);
        CHECK(r->error.find("signature") != std::string::npos);
    }
    SUBCASE("unknown command") {
        pair.dealer.send(zmq::str_buffer("SLUICE/1"), zmq::send_flags::sndmore);
        pair.dealer.send(zmq::str_buffer("\x63"), zmq::send_flags::sndmore);
        pair.dealer.send(zmq::str_buffer("\x90"), zmq::send_flags::none);
        auto r = pair.next();
        REQUIRE(r);
        CHECK_FALSE(r->envelope);
        CHECK(r->error == "unknown command");
    }
}
