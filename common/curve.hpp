// CURVE keys for the ZeroMQ links (README.md, Security): the key files every part reads, the
// rule for when CURVE is required, and putting the keys on a socket. A key is Z85 text, 40
// characters for 32 bytes; a key file holds one key, an allow-list one key per line, and in
// both blank lines and lines starting with '#' are ignored. sluice-keygen writes key files.
#pragma once

#include <zmq.hpp>

#include <cstddef>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>
#include <string_view>

namespace sluice::curve {

// Length of a key as Z85 text.
inline constexpr std::size_t KEY_LENGTH = 40;

// Thrown by the file readers below; the message names the file and what is wrong with it.
struct KeyFileError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// True when `text` is a key: KEY_LENGTH characters of the Z85 alphabet.
bool valid_key(std::string_view text);

// The one key in file `path`. Throws KeyFileError when the file cannot be read, holds no key,
// more than one, or a line that is not a key.
std::string read_key(const std::string& path);

// The keys in allow-list file `path` (may be empty). Throws KeyFileError when the file cannot
// be read or a line is not a key (the message gives its number).
std::set<std::string> read_allow_list(const std::string& path);

// The public key that goes with secret key `secret` (which must be valid_key()).
std::string public_key_of(const std::string& secret);

// A 32-byte binary key as Z85 text (ZAP requests carry keys in binary).
std::string z85_of(std::string_view binary);

// True when `endpoint` cannot leave this host: ipc://, inproc://, or tcp:// to a loopback
// address (127.x.x.x, ::1, localhost). Anything else may cross a network and needs CURVE.
bool local_endpoint(std::string_view endpoint);

// What a CURVE client needs: its own keypair and the public key of the server it talks to.
struct ClientKeys {
    std::string public_key;
    std::string secret_key;
    std::string server_key;
};

// Makes `socket` a CURVE client with `keys`. Call before connect.
void make_client(zmq::socket_t& socket, const ClientKeys& keys);

// Makes `socket` a CURVE server with `secret_key`; its ZAP requests name `domain`, so one
// handler tells its sockets apart. Call before bind.
void make_server(zmq::socket_t& socket, const std::string& secret_key, const std::string& domain);

// ---- from the environment: for mains only, like env.hpp ----
// Each reads the file named by a variable; unset or empty means nullopt, and a file that cannot
// be read or is malformed stops the process (exit 2) with a message naming the variable.

std::optional<std::string> env_key(const char* name);
std::optional<std::set<std::string>> env_allow_list(const char* name);

// A client's keys: its secret key from SLUICE_CURVE_SECRET_KEY_FILE (the public key follows from
// it) and the server's from SLUICE_BROKER_PUBLIC_KEY_FILE; nullopt when neither is set. Stops
// the process when only one is set, or neither while one of `endpoints` (the value of variable
// `endpoint_name`) is not a local_endpoint(). A leader and its standby share one keypair, so
// one server key serves every endpoint.
std::optional<ClientKeys> env_client_keys(const char* endpoint_name, const std::vector<std::string>& endpoints);

// The broker endpoints of variable `name`: comma-separated, the leader and its standbys
// (README.md, "A standby broker"), or `fallback` when unset. Stops the process (exit 2) when it
// is set but lists none.
std::vector<std::string> env_endpoints(const char* name, const std::string& fallback);

}  // namespace sluice::curve
