// Stop signals taken synchronously (see signals.hpp).
#include "signals.hpp"

#include <pthread.h>

namespace sluice {

sigset_t block_stop_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return signals;
}

}  // namespace sluice
