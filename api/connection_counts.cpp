// Open connections per client and in total (see connection_counts.hpp).
#include "connection_counts.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::api {

std::array<std::uint8_t, 16> mapped_bytes(const boost::asio::ip::address& address) {
    if (address.is_v4())
        return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, address.to_v4()).to_bytes();
    return address.to_v6().to_bytes();
}

ClientKey client_key(const boost::asio::ip::address& address) {
    ClientKey key;
    key.bytes = mapped_bytes(address);
    if (!address.is_v4() && !address.to_v6().is_v4_mapped())
        std::fill(key.bytes.begin() + 8, key.bytes.end(), std::uint8_t{0});  // the /64
    return key;
}

std::size_t ConnectionCounts::KeyHash::operator()(const ClientKey& key) const noexcept {
    std::uint64_t high = 0;
    std::uint64_t low = 0;
    std::memcpy(&high, key.bytes.data(), 8);
    std::memcpy(&low, key.bytes.data() + 8, 8);
    // splitmix64's finaliser over both halves: client addresses differ in few bits.
    std::uint64_t x = high ^ (low * 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<std::size_t>(x ^ (x >> 31));
}

ConnectionCounts::Ticket& ConnectionCounts::Ticket::operator=(Ticket&& other) noexcept {
    if (this != &other) {
        if (counts_) counts_->release(key_);
        counts_ = std::exchange(other.counts_, nullptr);
        key_ = other.key_;
    }
    return *this;
}

ConnectionCounts::Ticket::~Ticket() {
    if (counts_) counts_->release(key_);
}

ConnectionCounts::Admission ConnectionCounts::admit(const ClientKey& client, Ticket& ticket) {
    const std::size_t before = total_.fetch_add(1, std::memory_order_relaxed);
    Admission admission = Admission::ADMITTED;
    if (before >= limits_.total) {
        admission = Admission::SERVER_FULL;
    } else {
        Stripe& s = stripe(client);
        const std::lock_guard lock(s.mutex);
        std::uint32_t& held = s.held[client];
        if (held >= limits_.per_client) {
            admission = Admission::CLIENT_FULL;
        } else if (before + limits_.reserve >= limits_.total && held >= limits_.reserve_client) {
            admission = Admission::SERVER_FULL;
        } else {
            ++held;
        }
        if (held == 0) s.held.erase(client);
    }
    if (admission != Admission::ADMITTED) {
        total_.fetch_sub(1, std::memory_order_relaxed);
        return admission;
    }
    ticket = Ticket();
    ticket.counts_ = this;
    ticket.key_ = client;
    return admission;
}

ConnectionCounts::Admission ConnectionCounts::admit_proxy(Ticket& ticket) {
    if (total_.fetch_add(1, std::memory_order_relaxed) >= limits_.total) {
        total_.fetch_sub(1, std::memory_order_relaxed);
        return Admission::SERVER_FULL;
    }
    ticket = Ticket();
    ticket.counts_ = this;
    ticket.key_ = std::nullopt;
    return Admission::ADMITTED;
}

std::size_t ConnectionCounts::held(const ClientKey& client) {
    Stripe& s = stripe(client);
    const std::lock_guard lock(s.mutex);
    const auto it = s.held.find(client);
    return it == s.held.end() ? 0 : it->second;
}

void ConnectionCounts::release(const std::optional<ClientKey>& client) {
    if (client) {
        Stripe& s = stripe(*client);
        const std::lock_guard lock(s.mutex);
        const auto it = s.held.find(*client);
        if (it != s.held.end() && --it->second == 0) s.held.erase(it);
    }
    total_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace sluice::api
