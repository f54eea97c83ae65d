// The queue report (see queue_report.hpp).
#include "queue_report.hpp"

#include <msgpack.hpp>

namespace sluice::broker {

void RecentOutcomes::record(const std::string& type, const std::string& tenant, bool succeeded, std::int64_t now_s) {
    Bucket& bucket = pairs_[{type, tenant}][static_cast<std::size_t>(now_s % WINDOW_S)];
    if (bucket.second != now_s) bucket = Bucket{now_s, {}};
    ++(succeeded ? bucket.counts.succeeded : bucket.counts.failed);
}

RecentOutcomes::Counts RecentOutcomes::sum(const Buckets& buckets, std::int64_t now_s) {
    Counts total;
    for (const Bucket& bucket : buckets) {
        if (bucket.second <= now_s - WINDOW_S || bucket.second > now_s) continue;
        total.succeeded += bucket.counts.succeeded;
        total.failed += bucket.counts.failed;
    }
    return total;
}

RecentOutcomes::Counts RecentOutcomes::last_minute(const std::string& type, const std::string& tenant,
                                                   std::int64_t now_s) const {
    auto it = pairs_.find({type, tenant});
    return it == pairs_.end() ? Counts{} : sum(it->second, now_s);
}

std::map<std::pair<std::string, std::string>, RecentOutcomes::Counts> RecentOutcomes::take_last_minute(
    std::int64_t now_s) {
    std::map<std::pair<std::string, std::string>, Counts> out;
    for (auto it = pairs_.begin(); it != pairs_.end();) {
        const Counts counts = sum(it->second, now_s);
        if (counts.succeeded + counts.failed == 0) {
            it = pairs_.erase(it);
            continue;
        }
        out.emplace(it->first, counts);
        ++it;
    }
    return out;
}

namespace {

std::string packed(const msgpack::sbuffer& buffer) { return {buffer.data(), buffer.size()}; }

}  // namespace

std::vector<std::string> queue_report(std::int64_t now_ms, const QueueRows& rows,
                                      const std::map<std::string, std::size_t>& workers, std::size_t max_bytes) {
    // Each type's rows, packed, until the bound.
    std::map<std::string, std::pair<std::size_t, msgpack::sbuffer>> types;
    for (const auto& [type, count] : workers) types[type];
    std::size_t bytes = 0;
    bool truncated = false;
    for (const auto& [key, row] : rows) {
        msgpack::sbuffer one;
        msgpack::packer<msgpack::sbuffer> out(one);
        out.pack_array(7);
        out.pack(key.second).pack(row.queued).pack(row.scheduled).pack(row.running).pack(row.oldest_queued_ms);
        out.pack(row.succeeded_last_minute).pack(row.failed_last_minute);
        if (bytes + one.size() > max_bytes) {
            truncated = true;
            break;
        }
        bytes += one.size();
        auto& [count, buffer] = types[key.first];
        ++count;
        buffer.write(one.data(), one.size());
    }
    std::vector<std::string> fields;
    msgpack::sbuffer meta;
    msgpack::packer<msgpack::sbuffer> meta_out(meta);
    meta_out.pack_map(2);
    meta_out.pack(std::string_view("as_of_ms")).pack(now_ms);
    meta_out.pack(std::string_view("truncated")).pack(truncated);
    fields.emplace_back(META_FIELD);
    fields.push_back(packed(meta));
    for (const auto& [type, tenants] : types) {
        msgpack::sbuffer value;
        msgpack::packer<msgpack::sbuffer> out(value);
        out.pack_map(2);
        auto serving = workers.find(type);
        out.pack(std::string_view("workers")).pack(serving == workers.end() ? std::size_t{0} : serving->second);
        out.pack(std::string_view("tenants")).pack_array(static_cast<std::uint32_t>(tenants.first));
        value.write(tenants.second.data(), tenants.second.size());
        fields.push_back(type);
        fields.push_back(packed(value));
    }
    return fields;
}

}  // namespace sluice::broker
