// CURVE key files, the local-endpoint rule and socket setup (see curve.hpp).
#include "curve.hpp"

#include "env.hpp"

#include <arpa/inet.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <vector>

namespace sluice::curve {
namespace {

constexpr std::string_view Z85_ALPHABET =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

// The keys in `path`: its lines that are neither blank nor comments, blanks (and a CR) around
// them removed. Throws KeyFileError when the file cannot be read or such a line is not a key.
std::vector<std::string> key_lines(const std::string& path) {
    std::ifstream file(path);
    if (!file) throw KeyFileError(path + ": cannot be read");
    std::vector<std::string> lines;
    std::string line;
    for (int number = 1; std::getline(file, line); ++number) {
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
        const std::size_t start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == '#') continue;
        if (!valid_key(std::string_view(line).substr(start)))
            throw KeyFileError(path + ": line " + std::to_string(number) + " is not a key (" +
                               std::to_string(KEY_LENGTH) + " Z85 characters)");
        lines.push_back(line.substr(start));
    }
    if (file.bad()) throw KeyFileError(path + ": cannot be read");
    return lines;
}

// What `read` makes of the file named by variable `name`; nullopt when the variable is unset or
// empty. A KeyFileError stops the process, naming the variable.
template <class Read>
auto env_file(const char* name, Read read) -> std::optional<decltype(read(std::string()))> {
    const std::string path = env_string(name, "");
    if (path.empty()) return std::nullopt;
    try {
        return read(path);
    } catch (const KeyFileError& e) {
        env_fail(name, e.what());
    }
}

}  // namespace

bool valid_key(std::string_view text) {
    if (text.size() != KEY_LENGTH || text.find_first_not_of(Z85_ALPHABET) != std::string_view::npos) return false;
    std::uint8_t binary[32];
    return zmq_z85_decode(binary, std::string(text).c_str()) != nullptr;
}

std::string read_key(const std::string& path) {
    const auto lines = key_lines(path);
    if (lines.size() != 1)
        throw KeyFileError(path + ": holds " + std::to_string(lines.size()) + " keys, must hold one");
    return lines.front();
}

std::set<std::string> read_allow_list(const std::string& path) {
    std::vector<std::string> keys = key_lines(path);
    return {std::make_move_iterator(keys.begin()), std::make_move_iterator(keys.end())};
}

std::string public_key_of(const std::string& secret) {
    char public_key[KEY_LENGTH + 1];
    if (zmq_curve_public(public_key, secret.c_str()) != 0) throw zmq::error_t();
    return public_key;
}

std::string z85_of(std::string_view binary) {
    char text[KEY_LENGTH + 1];
    if (binary.size() != 32 ||
        zmq_z85_encode(text, reinterpret_cast<const std::uint8_t*>(binary.data()), binary.size()) == nullptr)
        return "(not a 32-byte key)";
    return text;
}

bool local_endpoint(std::string_view endpoint) {
    if (endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://")) return true;
    if (!endpoint.starts_with("tcp://")) return false;
    std::string_view address = endpoint.substr(6);
    // A connect may name its source first: tcp://SOURCE;HOST:PORT. The host is what matters.
    if (const std::size_t semicolon = address.rfind(';'); semicolon != std::string_view::npos)
        address.remove_prefix(semicolon + 1);
    std::string host;
    if (address.starts_with('[')) {
        host = address.substr(1, address.find(']') - 1);
    } else {
        host = address.substr(0, address.rfind(':'));
    }
    if (host == "localhost") return true;
    in_addr v4{};
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6{};
    return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

void make_client(zmq::socket_t& socket, const ClientKeys& keys) {
    socket.set(zmq::sockopt::curve_serverkey, keys.server_key);
    socket.set(zmq::sockopt::curve_publickey, keys.public_key);
    socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
}

void make_server(zmq::socket_t& socket, const std::string& secret_key, const std::string& domain) {
    socket.set(zmq::sockopt::zap_domain, domain);
    socket.set(zmq::sockopt::curve_server, 1);
    socket.set(zmq::sockopt::curve_secretkey, secret_key);
}

std::optional<std::string> env_key(const char* name) { return env_file(name, read_key); }

std::optional<std::set<std::string>> env_allow_list(const char* name) { return env_file(name, read_allow_list); }

std::vector<std::string> env_endpoints(const char* name, const std::string& fallback) {
    if (std::getenv(name) == nullptr) return {fallback};
    std::vector<std::string> endpoints = env_list(name);
    if (endpoints.empty()) env_fail(name, "lists no endpoint");
    return endpoints;
}

std::optional<ClientKeys> env_client_keys(const char* endpoint_name, const std::vector<std::string>& endpoints) {
    std::optional<std::string> secret = env_key("SLUICE_CURVE_SECRET_KEY_FILE");
    std::optional<std::string> server = env_key("SLUICE_BROKER_PUBLIC_KEY_FILE");
    if (secret && !server) env_fail("SLUICE_BROKER_PUBLIC_KEY_FILE", "must be set with SLUICE_CURVE_SECRET_KEY_FILE");
    if (server && !secret) env_fail("SLUICE_CURVE_SECRET_KEY_FILE", "must be set with SLUICE_BROKER_PUBLIC_KEY_FILE");
    if (!secret) {
        for (const std::string& endpoint : endpoints)
            if (!local_endpoint(endpoint))
                env_fail("SLUICE_BROKER_PUBLIC_KEY_FILE",
                         std::string("must be set (with SLUICE_CURVE_SECRET_KEY_FILE): ") + endpoint_name + " " +
                             endpoint +
                             " is not on this host, and without CURVE keys anyone on the way can pose as the broker "
                             "(README.md, Security)");
        return std::nullopt;
    }
    return ClientKeys{public_key_of(*secret), std::move(*secret), std::move(*server)};
}

}  // namespace sluice::curve
