// Command-name table for the SLUICE/1 protocol (used in logs).
#include "protocol.hpp"

namespace sluice::proto {

const char* command_name(std::uint8_t id) {
    switch (static_cast<Command>(id)) {
        case Command::SUBMIT: return "SUBMIT";
        case Command::CANCEL: return "CANCEL";
        case Command::PING: return "PING";
        case Command::REPLY: return "REPLY";
        case Command::RETRY: return "RETRY";
        case Command::FLOW: return "FLOW";
        case Command::READY: return "READY";
        case Command::JOB: return "JOB";
        case Command::PROGRESS: return "PROGRESS";
        case Command::CHUNK: return "CHUNK";
        case Command::RESULT: return "RESULT";
        case Command::FAILURE: return "FAILURE";
        case Command::CANCEL_JOB: return "CANCEL_JOB";
        case Command::CANCELED: return "CANCELED";
        case Command::HEARTBEAT: return "HEARTBEAT";
        case Command::DISCONNECT: return "DISCONNECT";
        case Command::SPAWN: return "SPAWN";
        case Command::RATE_LIMITED: return "RATE_LIMITED";
    }
    return nullptr;
}

}  // namespace sluice::proto
