// Cron schedules, the broker's part (README.md, "Schedules"): the api stores a schedule and its
// first tick; the leading broker polls for the due ones, works out from the tick stored in
// Redis which ticks passed, and claims and fires them with one script (scripts::FIRE), so a
// restart or a failover neither fires a tick twice (the claim compares the stored tick) nor
// skips one silently (a tick missed while no broker led is fired once or counted as skipped).
#include "broker.hpp"

#include "cron.hpp"
#include "cron_scripts.hpp"
#include "job_id.hpp"
#include "log.hpp"

namespace sluice::broker {
namespace {

// How often the leader looks for due schedules: a tick fires within this of its time. One
// ZRANGEBYSCORE on an index of schedules costs Redis microseconds.
constexpr std::chrono::milliseconds CRON_POLL_INTERVAL{100};
// Schedules read per poll; a full batch means more are due, and the next poll goes at once.
constexpr long long CRON_POLL_BATCH = 100;
// A due tick is late, not missed, while it is at most this old: the last due tick of a schedule
// whose `missed` is `skip` still fires within it (a short Redis hiccup or a failover of a few
// seconds loses no tick of an hourly schedule), later it is skipped.
constexpr std::int64_t MISSED_AFTER_MS = 60 * 1000;
// Ticks worked out per FIRE at most (a few microseconds each): a per-second schedule after a
// day without a leader has 86400 due; they are claimed this many at a time, over several polls.
constexpr std::size_t MAX_TICKS_PER_FIRE = 10000;

}  // namespace

void Broker::poll_schedules(Clock::time_point now) {
    if (cron_calls_ > 0 || now < next_cron_poll_ || sync_ != Sync::DONE) return;
    next_cron_poll_ = now + CRON_POLL_INTERVAL;
    ++cron_calls_;
    const bool sent = eval(scripts::CRON_DUE, {}, {std::to_string(now_ms()), std::to_string(CRON_POLL_BATCH)},
                           [this](redisReply* r) {
        --cron_calls_;
        if (r == nullptr || r->type != REDIS_REPLY_ARRAY) {
            if (r != nullptr) log::error("reading the due schedules failed: {}", reply_error(r));
            return;
        }
        for (std::size_t i = 0; i + scripts::CRON_DUE_STRIDE <= r->elements; i += scripts::CRON_DUE_STRIDE)
            fire_schedule(r->element + i);
        if (r->elements / scripts::CRON_DUE_STRIDE >= static_cast<std::size_t>(CRON_POLL_BATCH))
            next_cron_poll_ = Clock::now();
    });
    if (!sent) --cron_calls_;
}

void Broker::fire_schedule(const redisReply* const* row) {
    const std::string id = reply_text(row[0]), expected = reply_text(row[1]), missed_option = reply_text(row[4]);
    const std::int64_t now = now_ms();
    std::vector<std::string> args = {id, expected, "0", "0", "0", "0", ""};  // scripts::FireArg order
    auto made = cron::Cron::make(reply_text(row[2]), reply_text(row[3]));
    std::optional<std::int64_t> next = reply_int(row[1]);
    // The due ticks, from the stored one on: the last of them fires (or, `skip` and late, none).
    std::size_t due = 0;
    std::int64_t last = 0;
    if (auto* error = std::get_if<cron::Cron::Error>(&made)) {
        // A zone this host's tzdata no longer knows: the schedule stops, and says why.
        log::error("schedule {} stops: {}", id, error->message);
        args[scripts::FIRE_REFUSAL] = error->message;
        args[scripts::FIRE_TICK] = expected;
        next.reset();
    } else {
        const cron::Cron& cron = std::get<cron::Cron>(made);
        while (next && *next <= now && due < MAX_TICKS_PER_FIRE) {
            last = *next;
            ++due;
            next = cron.next_after(last);
        }
    }
    if (due == 0 && args[scripts::FIRE_REFUSAL].empty()) return;  // not due by this broker's clock after all
    args[scripts::FIRE_NEXT] = next ? std::to_string(*next) : "0";
    const bool caught_up = !next || *next > now;
    const bool run_once = missed_option != "skip";
    if (due > 0 && !caught_up) {
        // More due than one call works out: these are missed, and the fire waits for the rest.
        args[run_once ? scripts::FIRE_MISSED : scripts::FIRE_SKIPPED] = std::to_string(due);
    } else if (due > 0 && (run_once || now - last <= MISSED_AFTER_MS)) {
        args[scripts::FIRE_TICK] = std::to_string(last);
        args[run_once ? scripts::FIRE_MISSED : scripts::FIRE_SKIPPED] = std::to_string(due - 1);
    } else if (due > 0) {
        args[scripts::FIRE_SKIPPED] = std::to_string(due);
    }
    if (args[scripts::FIRE_SKIPPED] != "0")
        log::warn("schedule {}: {} tick(s) missed while no broker led (or late by more than {} s): skipped, as its "
                  "`missed` option (skip) says", id, args[scripts::FIRE_SKIPPED], MISSED_AFTER_MS / 1000);
    if (args[scripts::FIRE_MISSED] != "0" && args[scripts::FIRE_TICK] != "0")
        log::warn("schedule {}: {} earlier tick(s) missed while no broker led: one job fires for them all "
                  "(missed: run_once)", id, args[scripts::FIRE_MISSED]);

    std::vector<SubmitItem> fired;  // the tick's job, when it fires: one item of SUBMIT's batch
    if (args[scripts::FIRE_TICK] != "0" && args[scripts::FIRE_REFUSAL].empty()) {
        auto job = proto::decode_body<proto::Submit>(reply_text(row[5]));
        if (!job) {
            args[scripts::FIRE_REFUSAL] = "the schedule's job could not be read";
        } else {
            job->job_id = make_job_id();
            job->run_at_ms = 0;
            const std::int64_t expire_after = reply_int(row[6]);
            job->expire_at_ms = expire_after > 0 ? static_cast<std::uint64_t>(now + expire_after) : 0;
            if (auto problem = submit_problem(*job)) args[scripts::FIRE_REFUSAL] = *problem;
            else if (auto refused = admission_refusal(*job)) args[scripts::FIRE_REFUSAL] = std::move(refused->second);
            else fired.push_back(submit_item("", std::move(*job)));
        }
    }
    if (!fired.empty()) {
        // Moves the input out: the callback keeps what it needs to queue the job.
        std::vector<std::string> job_args = batch_args({now, config_.tenant_max_bytes, 0}, fired);
        std::move(job_args.begin(), job_args.end(), std::back_inserter(args));
    }
    const std::string tick = args[scripts::FIRE_TICK];
    ++cron_calls_;
    const bool sent = eval(scripts::FIRE, {}, std::move(args), [this, id, tick, fired](redisReply* r) {
        --cron_calls_;
        for (const SubmitItem& item : fired) stored(item);
        if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
            if (r != nullptr) log::error("firing schedule {} failed: {}", id, reply_error(r));
            return;
        }
        const std::string outcome = reply_text(r->element[0]);
        if (outcome == "ok" && !fired.empty()) {
            const SubmitItem& item = fired.front();
            queues_.push(item.type, item.job_id, item.priority,
                         Owner{item.tenant, item.concurrency_key, item.concurrency_limit}, item.enqueued_ms);
            metrics_.count(item.type, BrokerMetrics::SUBMITTED);
            log::info("schedule {} fired job {} for tick {}", id, item.job_id, tick);
        } else if (outcome == "joined" && !fired.empty()) {
            // Stored beside the job it joined (options.dedupe), which runs for both: nothing to queue.
            const SubmitItem& item = fired.front();
            metrics_.count(item.type, BrokerMetrics::SUBMITTED);
            metrics_.count(item.type, BrokerMetrics::JOINED);
            log::info("schedule {} fired job {} for tick {}: it joined job {}", id, item.job_id, tick,
                      r->elements > 2 ? reply_text(r->element[2]) : "");
        } else if (outcome == "refused") {
            log::warn("schedule {}: tick {} refused: {}", id, tick, r->elements > 1 ? reply_text(r->element[1]) : "");
        }
    });
    if (!sent) {
        --cron_calls_;
        for (const SubmitItem& item : fired) stored(item);
    }
}

}  // namespace sluice::broker
