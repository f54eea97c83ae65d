// The stop signals of every Sluice process (SIGINT, SIGTERM), taken synchronously: a main
// blocks them before it starts any thread, so every thread inherits the mask, and then waits
// for them with sigwait() or reads them from a signalfd. No asynchronous handler anywhere.
#pragma once

#include <signal.h>

namespace sluice {

// Blocks SIGINT and SIGTERM in the calling thread (and in every thread it starts afterwards)
// and returns that set, for sigwait() or signalfd(). Call first thing in main.
sigset_t block_stop_signals();

}  // namespace sluice
