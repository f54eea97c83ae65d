// Job ids (docs/ARCHITECTURE.md, invariant 7): unguessable, so knowing one is the key to a job.
// The api makes the id of every submitted job, the broker that of every job a schedule fires.
// Thread-safe.
#pragma once

#include <string>

namespace sluice {

// Returns a fresh random UUIDv4 (122 bits from the kernel CSPRNG), lowercase 8-4-4-4-12.
// Throws std::system_error if the kernel refuses randomness (broken setup).
std::string make_job_id();

}  // namespace sluice
