// Job ids: random UUIDv4s (invariant 7: unguessable), made by the api for submits and by the
// broker for the children a worker spawns. Thread-safe.
#pragma once

#include <string>

namespace sluice {

// Returns a fresh random UUIDv4 (122 bits from the kernel CSPRNG), lowercase 8-4-4-4-12.
// Throws std::system_error if the kernel refuses randomness (broken setup).
std::string make_job_id();

}  // namespace sluice
