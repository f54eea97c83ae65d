// What the broker does on the clock besides heartbeats and leases (see broker.hpp): it queues
// scheduled jobs once due, fails the jobs that were not started by their deadline, and writes
// the queue report GET /v1/queues reads.
#include "broker.hpp"

#include "keys.hpp"
#include "log.hpp"
#include "timed_scripts.hpp"

#include <iterator>

namespace sluice::broker {
namespace {

// Scheduled jobs queued, and expired jobs failed, per script call: each costs Redis a few
// commands, so a call stays well under a millisecond; a full batch means more are due, and the
// next call goes on the next turn.
constexpr long long PROMOTE_BATCH = 1000;
constexpr long long EXPIRE_BATCH = 1000;
// How often the broker looks for jobs past their deadline: an expired job ends within a second
// of it (or at once, when a worker would have taken it: START checks too).
constexpr std::chrono::milliseconds DEADLINE_CHECK_INTERVAL{1000};
// The queue report: written once a second, gone 5 s after the broker stops writing it, like the
// worker report; its rows stop at QUEUE_REPORT_MAX_BYTES (a row is 20 to 250 bytes: thousands
// of tenants' rows fit), so a GET /v1/queues reads a bounded hash.
constexpr std::chrono::milliseconds QUEUE_REPORT_INTERVAL{1000};
constexpr long long QUEUE_REPORT_TTL_S = 5;
constexpr std::size_t QUEUE_REPORT_MAX_BYTES = 512 * 1024;

bool is_array(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_ARRAY; }

}  // namespace

void Broker::load_schedule(std::function<void()> done) {
    eval(scripts::LOAD_SCHEDULED, {}, {}, [this, done = std::move(done)](redisReply* r) {
        if (!is_array(r)) return resync_failed("loading the schedule", r);
        schedule_ = Schedule();
        for (std::size_t i = 0; i + scripts::LOAD_SCHEDULED_STRIDE <= r->elements; i += scripts::LOAD_SCHEDULED_STRIDE)
            schedule_.add(reply_text(r->element[i]), reply_text(r->element[i + 1]), reply_text(r->element[i + 2]),
                          reply_int(r->element[i + 3]));
        done();
    });
}

void Broker::promote_due() {
    const auto due = schedule_.next_due();
    const std::int64_t now = now_ms();
    if (promoting_ || !due || *due > now || sync_ != Sync::DONE) return;
    promoting_ = true;
    const bool sent = eval(scripts::PROMOTE, {},
                           {std::to_string(now), std::to_string(PROMOTE_BATCH), std::to_string(config_.events_maxlen),
                            std::to_string(config_.job_ttl_s)},
                           [this](redisReply* r) {
        promoting_ = false;
        if (!is_array(r)) return log::error("queueing scheduled jobs failed: {}", reply_error(r));
        for (std::size_t i = 0; i + scripts::PROMOTE_STRIDE <= r->elements; i += scripts::PROMOTE_STRIDE) {
            const std::string id = reply_text(r->element[i]), outcome = reply_text(r->element[i + 1]);
            const std::string type = reply_text(r->element[i + 2]);
            schedule_.remove(id);
            if (outcome == "queued") {
                queues_.push(type, id, static_cast<int>(reply_int(r->element[i + 3])), owner_of(r->element + i + 4),
                             reply_int(r->element[i + 7]));
            } else if (outcome == "expired") {
                log::info("scheduled job {} expired before it was due", id);
                record_outcome(type, reply_text(r->element[i + 4]), false);
            }
        }
    });
    if (!sent) promoting_ = false;
}

void Broker::expire_due(Clock::time_point now) {
    if (expiring_ || now < next_deadline_check_ || sync_ != Sync::DONE) return;
    expiring_ = true;
    const bool sent = eval(scripts::EXPIRE_DUE, {},
                           {std::to_string(now_ms()), std::to_string(EXPIRE_BATCH),
                            std::to_string(config_.events_maxlen), std::to_string(config_.job_ttl_s)},
                           [this](redisReply* r) {
        expiring_ = false;
        if (!is_array(r)) {
            next_deadline_check_ = Clock::now() + DEADLINE_CHECK_INTERVAL;
            return log::error("expiring jobs past their deadline failed: {}", reply_error(r));
        }
        const std::size_t expired = r->elements / scripts::EXPIRE_DUE_STRIDE;
        next_deadline_check_ = Clock::now() + (expired >= static_cast<std::size_t>(EXPIRE_BATCH)
                                                   ? std::chrono::milliseconds(0)
                                                   : DEADLINE_CHECK_INTERVAL);
        for (std::size_t i = 0; i + scripts::EXPIRE_DUE_STRIDE <= r->elements; i += scripts::EXPIRE_DUE_STRIDE) {
            const std::string id = reply_text(r->element[i]);
            if (reply_text(r->element[i + 1]) == "scheduled") {
                schedule_.remove(id);
            } else {
                queues_.remove(id);
                jobs_.drop_delayed(id);
            }
            log::info("job {} expired: not started by its deadline", id);
            record_outcome(reply_text(r->element[i + 2]), reply_text(r->element[i + 3]), false);
        }
    });
    if (!sent) expiring_ = false;
}

void Broker::record_outcome(const std::string& type, const std::string& tenant, bool succeeded) {
    outcomes_.record(type, tenant, succeeded, now_ms() / 1000);
}

void Broker::report_queues(Clock::time_point now) {
    if (now < next_queue_report_) return;
    next_queue_report_ = now + QUEUE_REPORT_INTERVAL;
    const std::int64_t wall_ms = now_ms();
    QueueRows rows;
    for (const auto& backlog : queues_.backlog()) {
        QueueRow& row = rows[{backlog.type, backlog.tenant}];
        row.queued = backlog.queued;
        row.oldest_queued_ms = backlog.oldest_ms;
    }
    for (const auto& [key, count] : jobs_.delayed_by_type()) rows[key].queued += count;
    for (const auto& [key, count] : jobs_.running_by_type()) rows[key].running = count;
    for (const auto& [key, count] : schedule_.counts()) rows[key].scheduled = count;
    for (const auto& [key, counts] : outcomes_.take_last_minute(wall_ms / 1000)) {
        rows[key].succeeded_last_minute = counts.succeeded;
        rows[key].failed_last_minute = counts.failed;
    }
    std::map<std::string, std::size_t> serving;
    for (const auto& [identity, worker] : workers_.all())
        for (const std::string& type : worker.types) ++serving[type];
    std::vector<std::string> fields = queue_report(wall_ms, rows, serving, QUEUE_REPORT_MAX_BYTES);
    std::vector<std::string> args = {std::to_string(QUEUE_REPORT_TTL_S)};
    std::move(fields.begin(), fields.end(), std::back_inserter(args));
    eval(scripts::REPORT_QUEUES, {std::string(keys::QUEUES)}, std::move(args), [](redisReply* r) {
        if (r != nullptr && r->type == REDIS_REPLY_ERROR)
            log::error("storing the queue report failed: {}", reply_error(r));
    });
}

}  // namespace sluice::broker
