// Sizes, counts, durations and times as people read them in CLI output and log lines ("1.50 MiB",
// "263.71M", "1m05s"). Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace mmserve {

std::string human_bytes(uint64_t bytes);     // "512 B", "1.50 MiB", "3.20 GiB"
std::string human_count(uint64_t n);         // "999", "292.8K", "263.71M", "1.24B"
std::string human_duration(double seconds);  // "45s", "1m05s", "2h03m"
// A Unix time in milliseconds as ISO 8601 UTC to the second: "2026-12-02T14:03:07Z".
std::string iso_utc(int64_t unix_ms);

}  // namespace mmserve
