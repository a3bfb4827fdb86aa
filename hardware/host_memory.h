// The host memory a tool may take: what this machine can give now, and the one line that
// refuses a job that would not fit (before it starts, rather than a bare std::bad_alloc or
// the kernel killing the process without a word). Each tool estimates its own need.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace kpu::hw {

/// Bytes this host can give a new allocation now: /proc/meminfo's MemAvailable, capped by
/// the cgroup's memory.max when there is one; nullopt when neither can be read.
std::optional<uint64_t> available_host_memory();

/// "" when `needed` bytes fit `limit` (--max-host-memory in bytes when given, else
/// available_host_memory(); no limit known: ""), else "needs about 21.3 GiB of host memory,
/// 23.4 GiB available; --max-host-memory to override" (", 8 GiB allowed by
/// --max-host-memory" when the limit was given).
std::string host_memory_problem(uint64_t needed, std::optional<uint64_t> limit);

/// --max-host-memory GIB: a positive number of GiB ("64", "0.5"); throws std::runtime_error
/// naming the option and the text otherwise.
uint64_t parse_host_memory_limit(const std::string& text);

/// "21.3 GiB"; below 1 GiB, "250 MiB"
std::string gib(uint64_t bytes);

}  // namespace kpu::hw
