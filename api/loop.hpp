// Small pieces shared by the api's event-loop code: coroutine aliases, the timer-as-signal
// wake-up (Boost 1.74 has no channels) and the per-shard table of sessions waiting on a job.
// Everything here belongs to one shard's loop thread and is not thread-safe.
#pragma once

#include "job_json.hpp"  // EventEntry, which notices carry
#include "log.hpp"

#include <optional>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <iterator>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::api {

namespace asio = boost::asio;
template <class T = void>
using awaitable = asio::awaitable<T>;
using Clock = std::chrono::steady_clock;

// The completion handler of a spawned coroutine: logs an exception that escaped it, where it
// was spawned.
inline auto log_failure(const char* what) {
    return [what](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            log::error("{}: {}", what, ex.what());
        }
    };
}

// Anything waiting for news about a job, as the Notifier sees it.
class Wakeable {
public:
    // Records the news and interrupts the wait in progress, if any.
    virtual void wake() = 0;
    // The same, for news that came with the event it announces.
    virtual void wake_with(EventEntry /*event*/) { wake(); }
    // The shard's tick, once a second (Notifier::tick): a waiter with a deadline of its own
    // and no timer for it looks at the clock here.
    virtual void tick(Clock::time_point /*now*/) {}

protected:
    ~Wakeable() = default;
};

// A one-shot wake-up: a coroutine waits on `timer` with a timeout; wake() cancels the wait.
// `woken` remembers a wake-up that came while nobody was waiting, so it is never lost.
struct Waiter final : Wakeable {
    explicit Waiter(asio::io_context& ioc) : timer(ioc) {}
    asio::steady_timer timer;
    bool woken = false;
    boost::system::error_code ec;  // of the last wait: the timer's, never looked at

    void wake() override {
        woken = true;
        timer.cancel();
    }
};

// The wait for a reply that wakes `waiter` once it is stored, or for `timeout`, as an awaitable
// with no coroutine frame of its own: one less allocation per request or command in flight.
// Afterwards the caller looks at what it was waiting for, not at the waiter.
inline auto woken_or_timeout(Waiter& waiter, Clock::duration timeout) {
    waiter.timer.expires_after(waiter.woken ? Clock::duration::zero() : timeout);
    return waiter.timer.async_wait(asio::redirect_error(asio::use_awaitable, waiter.ec));
}

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

// Job id -> what waits for news about that job (fed by the sluice:notify subscription). One
// node per waiter, keyed by a view of an id the waiter's owner keeps: this is per open stream.
class Notifier {
public:
    // Wakes every waiter registered for `job_id`, with `event` when the notice carried it (the
    // last waiter takes it, the others get copies: usually there is just one).
    void notify(std::string_view job_id, std::optional<EventEntry> event) {
        auto [first, last] = waiters_.equal_range(job_id);
        for (auto it = first; it != last; ++it) {
            if (!event) {
                it->second->wake();
            } else if (std::next(it) == last) {
                it->second->wake_with(std::move(*event));
            } else {
                it->second->wake_with(*event);
            }
        }
    }
    // Wakes everybody (shutdown, or the subscription came back and notices may have been lost).
    void notify_all() {
        for (auto& [id, waiter] : waiters_) waiter->wake();
    }
    // Passes the shard's tick on to every waiter.
    void tick(Clock::time_point now) {
        for (auto& [id, waiter] : waiters_) waiter->tick(now);
    }
    // `job_id` must outlive the registration.
    void add(std::string_view job_id, Wakeable* waiter) { waiters_.emplace(job_id, waiter); }
    void remove(std::string_view job_id, Wakeable* waiter) {
        auto [first, last] = waiters_.equal_range(job_id);
        for (auto it = first; it != last; ++it) {
            if (it->second == waiter) {
                waiters_.erase(it);
                return;
            }
        }
    }

private:
    std::unordered_multimap<std::string_view, Wakeable*> waiters_;
};

// Registers `waiter` for news about one job for as long as it lives; `job_id` must outlive it.
class JobWatch {
public:
    JobWatch(Notifier& notifier, std::string_view job_id, Wakeable& waiter)
        : notifier_(notifier), job_id_(job_id), waiter_(waiter) {
        notifier_.add(job_id_, &waiter_);
    }
    ~JobWatch() { notifier_.remove(job_id_, &waiter_); }
    JobWatch(const JobWatch&) = delete;
    JobWatch& operator=(const JobWatch&) = delete;

private:
    Notifier& notifier_;
    std::string_view job_id_;
    Wakeable& waiter_;
};

}  // namespace sluice::api
