// The ZAP handler (RFC 27) on the broker's own loop: who may connect to the frontend (api
// instances) and the backend (workers). libzmq asks it once per CURVE handshake, over
// inproc://zeromq.zap.01, after the client has proved it holds the secret key of the public key
// it presents; the broker answers from the allow-lists of its config (see broker.hpp).
#include "broker.hpp"

#include "curve.hpp"
#include "log.hpp"

#include <zmq_addon.hpp>

#include <array>
#include <iterator>

namespace sluice::broker {
namespace {

// A ZAP request: version, request id, domain, address, routing id, mechanism, credentials.
constexpr std::size_t ZAP_REQUEST_FRAMES = 7;
// Requests answered per loop turn, so a storm of handshakes cannot starve the job sockets.
constexpr int MAX_ZAP_BATCH = 64;

}  // namespace

void Broker::handle_zap() {
    for (int i = 0; i < MAX_ZAP_BATCH; ++i) {
        std::vector<zmq::message_t> request;
        if (!zmq::recv_multipart(*zap_, std::back_inserter(request), zmq::recv_flags::dontwait)) return;
        const std::string request_id = request.size() > 1 ? request[1].to_string() : "";
        std::array<std::string, 6> reply = {"1.0", request_id, "200", "OK", "", ""};
        if (request.size() < ZAP_REQUEST_FRAMES || request[0].to_string_view() != "1.0" ||
            request[5].to_string_view() != "CURVE") {
            // libzmq sends only well-formed CURVE requests here: this is a bug, not a peer.
            log::error("ZAP: malformed request ({} frames): refused", request.size());
            reply[2] = "500";
            reply[3] = "malformed ZAP request";
        } else {
            const std::string domain = request[2].to_string();
            const std::string key = curve::z85_of(request[6].to_string_view());
            const bool api = domain == API_DOMAIN;
            const auto& allowed = api ? config_.curve->api_keys : config_.curve->worker_keys;
            if (allowed.count(key) != 0) {
                reply[4] = key;  // the ZAP user id: the peer's public key
            } else {
                reply[2] = "400";
                reply[3] = "key not allowed";
                const RefusalLog::Verdict verdict = refusals_.note(key, Clock::now());
                if (verdict.unlogged > 0)
                    log::warn("{} more refused CURVE handshakes in the last minute were not logged (one line per "
                              "key per minute, at most {} keys)",
                              verdict.unlogged, RefusalLog::MAX_KEYS);
                if (verdict.log_key)
                    log::warn("{}: refused a CURVE client from {} with public key {}: not in {} (logged once a minute "
                              "per key)",
                              api ? "frontend" : "backend", request[3].to_string_view(), key,
                              api ? "SLUICE_API_KEYS_FILE" : "SLUICE_WORKER_KEYS_FILE");
            }
        }
        std::vector<zmq::const_buffer> frames;
        for (const std::string& frame : reply) frames.push_back(zmq::buffer(frame));
        (void)zmq::send_multipart(*zap_, frames);
    }
}

}  // namespace sluice::broker
