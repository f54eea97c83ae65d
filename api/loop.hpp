// Small pieces shared by the api's event-loop code: coroutine aliases, the timer-as-signal
// wake-up (Boost 1.74 has no channels) and the per-shard table of sessions waiting on a job.
// Everything here belongs to one shard's loop thread and is not thread-safe.
#pragma once

#include <optional>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::api {

namespace asio = boost::asio;
template <class T = void>
using awaitable = asio::awaitable<T>;
using Clock = std::chrono::steady_clock;

// A one-shot wake-up: a coroutine waits on `timer` with a timeout; wake() cancels the wait.
// `woken` remembers a wake-up that came while nobody was waiting, so it is never lost.
struct Waiter {
    explicit Waiter(asio::io_context& ioc) : timer(ioc) {}
    asio::steady_timer timer;
    bool woken = false;

    void wake() {
        woken = true;
        timer.cancel();
    }
};

// Suspends until `waiter` is woken or `timeout` passes; returns true when it was woken.
// Consumes the wake-up.
inline awaitable<bool> wait_for(Waiter& waiter, Clock::duration timeout) {
    if (!waiter.woken) {
        waiter.timer.expires_after(timeout);
        boost::system::error_code ec;
        co_await waiter.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    const bool woken = waiter.woken;
    waiter.woken = false;
    co_return woken;
}

// Job id -> sessions waiting for news about that job (fed by the sluice:notify subscription).
// One node per waiter, keyed by a view of the id its JobWatch owns: this is per open stream.
class Notifier {
public:
    // Wakes every waiter registered for `job_id`.
    void notify(std::string_view job_id) {
        auto [first, last] = waiters_.equal_range(job_id);
        for (auto it = first; it != last; ++it) it->second->wake();
    }
    // Wakes everybody (shutdown, or the subscription came back and notices may have been lost).
    void notify_all() {
        for (auto& [id, waiter] : waiters_) waiter->wake();
    }
    // `job_id` must outlive the registration.
    void add(std::string_view job_id, Waiter* waiter) { waiters_.emplace(job_id, waiter); }
    void remove(std::string_view job_id, Waiter* waiter) {
        auto [first, last] = waiters_.equal_range(job_id);
        for (auto it = first; it != last; ++it) {
            if (it->second == waiter) {
                waiters_.erase(it);
                return;
            }
        }
    }

private:
    std::unordered_multimap<std::string_view, Waiter*> waiters_;
};

// Registers a Waiter for one job for as long as it lives.
class JobWatch {
public:
    JobWatch(Notifier& notifier, asio::io_context& ioc, std::string job_id)
        : notifier_(notifier), job_id_(std::move(job_id)), waiter_(ioc) {
        notifier_.add(job_id_, &waiter_);
    }
    ~JobWatch() { notifier_.remove(job_id_, &waiter_); }
    JobWatch(const JobWatch&) = delete;
    JobWatch& operator=(const JobWatch&) = delete;
    Waiter& waiter() { return waiter_; }

private:
    Notifier& notifier_;
    const std::string job_id_;
    Waiter waiter_;
};

}  // namespace sluice::api
