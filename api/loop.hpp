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
#include <unordered_map>
#include <unordered_set>

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
class Notifier {
public:
    // Wakes every waiter registered for `job_id`.
    void notify(const std::string& job_id) {
        auto it = waiters_.find(job_id);
        if (it == waiters_.end()) return;
        for (Waiter* w : it->second) w->wake();
    }
    // Wakes everybody (shutdown, or the subscription came back and notices may have been lost).
    void notify_all() {
        for (auto& [id, set] : waiters_)
            for (Waiter* w : set) w->wake();
    }
    void add(const std::string& job_id, Waiter* waiter) { waiters_[job_id].insert(waiter); }
    void remove(const std::string& job_id, Waiter* waiter) {
        auto it = waiters_.find(job_id);
        if (it == waiters_.end()) return;
        it->second.erase(waiter);
        if (it->second.empty()) waiters_.erase(it);
    }

private:
    std::unordered_map<std::string, std::unordered_set<Waiter*>> waiters_;
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
    std::string job_id_;
    Waiter waiter_;
};

}  // namespace sluice::api
