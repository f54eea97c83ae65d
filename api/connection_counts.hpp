// Open HTTP connections across every shard of sluice-api, in total and per client address, and
// whether one more may open: the global limit (SLUICE_API_MAX_CONNECTIONS), the per-client one
// (SLUICE_API_MAX_CONNECTIONS_PER_CLIENT), and a reserve of the last slots for clients that hold
// few connections, so one client, or a few, cannot lock every other one out (a health check
// and a new client still get in). Counted once per connection (accept and close), never per
// request. A trusted reverse proxy's connections count in the total only (admit_proxy).
// Thread-safe: the shards' loop threads all call admit() and release tickets.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

namespace sluice::api {

// Who a connection counts against: an IPv4 address, or the /64 network of an IPv6 one (a single
// IPv6 host usually holds a whole /64, and would otherwise count as 2^64 clients).
struct ClientKey {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 as IPv4-mapped IPv6
    bool operator==(const ClientKey&) const = default;
};

// `address` as 16 bytes, an IPv4 one in its IPv4-mapped IPv6 form.
std::array<std::uint8_t, 16> mapped_bytes(const boost::asio::ip::address& address);

// The key `address` counts against.
ClientKey client_key(const boost::asio::ip::address& address);

class ConnectionCounts {
public:
    struct Limits {
        std::size_t total = 1024;       // open connections, all clients
        std::size_t per_client = 64;    // open connections of one ClientKey
        std::size_t reserve = 128;      // the last this many slots of `total` ...
        std::size_t reserve_client = 4;  // ... go only to clients holding fewer than this many
    };

    enum class Admission {
        ADMITTED,
        SERVER_FULL,  // the total limit, or the reserve to a client holding many: 503
        CLIENT_FULL,  // this client holds its per_client connections already: 429
    };

    // A counted connection; released when it is destroyed (or moved from and reassigned).
    class Ticket {
    public:
        Ticket() = default;
        Ticket(Ticket&& other) noexcept : counts_(std::exchange(other.counts_, nullptr)), key_(other.key_) {}
        Ticket& operator=(Ticket&& other) noexcept;
        ~Ticket();

    private:
        friend class ConnectionCounts;
        ConnectionCounts* counts_ = nullptr;
        std::optional<ClientKey> key_;  // none: a trusted proxy's connection (admit_proxy)
    };

    explicit ConnectionCounts(Limits limits) : limits_(limits) {}

    // Counts a connection from `client` in `ticket` when the limits allow it, else says which
    // limit refused it (nothing counted).
    Admission admit(const ClientKey& client, Ticket& ticket);
    // Counts a connection from a trusted reverse proxy (SLUICE_API_TRUSTED_PROXIES) when the
    // total allows it: it carries many clients' requests, whose connections the proxy limits
    // per client itself, so neither the per-client limit nor the reserve applies to it.
    Admission admit_proxy(Ticket& ticket);

    // Open connections, all clients.
    std::size_t total() const { return total_.load(std::memory_order_relaxed); }
    // Open connections of `client`.
    std::size_t held(const ClientKey& client);

private:
    struct KeyHash {
        std::size_t operator()(const ClientKey& key) const noexcept;
    };
    // Clients are spread over stripes by their hash, each with its own lock, so shards
    // accepting at once rarely wait on each other.
    struct alignas(64) Stripe {
        std::mutex mutex;
        std::unordered_map<ClientKey, std::uint32_t, KeyHash> held;  // only clients holding some
    };
    static constexpr std::size_t STRIPES = 16;

    Stripe& stripe(const ClientKey& client) { return stripes_[KeyHash{}(client) % STRIPES]; }
    void release(const std::optional<ClientKey>& client);

    Limits limits_;
    std::atomic<std::size_t> total_{0};
    std::array<Stripe, STRIPES> stripes_;
};

}  // namespace sluice::api
