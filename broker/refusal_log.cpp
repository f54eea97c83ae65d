// Rate limit of the broker's refused-key log lines (see refusal_log.hpp).
#include "refusal_log.hpp"

namespace sluice::broker {

RefusalLog::Verdict RefusalLog::note(const std::string& key, Clock::time_point now) {
    Verdict verdict;
    if (now >= window_end_) {
        verdict.unlogged = unlogged_;
        unlogged_ = 0;
        logged_.clear();
        window_end_ = now + WINDOW;
    }
    if (logged_.size() < MAX_KEYS && logged_.insert(key).second)
        verdict.log_key = true;
    else
        ++unlogged_;
    return verdict;
}

}  // namespace sluice::broker
