#include "hardware/host_memory.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace kpu::hw {

std::optional<uint64_t> available_host_memory() {
    std::optional<uint64_t> available;
    std::ifstream meminfo("/proc/meminfo");
    for (std::string line; std::getline(meminfo, line);) {
        unsigned long long kib = 0;
        if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kib) == 1) available = uint64_t(kib) << 10;
    }
    // A container's limit (cgroup v2) binds before the machine's memory does.
    std::ifstream cgroup("/sys/fs/cgroup/memory.max"), current("/sys/fs/cgroup/memory.current");
    unsigned long long max = 0, used = 0;
    if (cgroup >> max && current >> used && max > used) {
        const uint64_t room = uint64_t(max - used);
        available = available ? std::min(*available, room) : room;
    }
    return available;
}

std::string gib(uint64_t bytes) {
    std::ostringstream out;
    if (bytes < (1ull << 30)) {
        out << (bytes + (1ull << 19)) / (1ull << 20) << " MiB";
    } else {
        out.precision(1);
        out << std::fixed << double(bytes) / double(1ull << 30) << " GiB";
    }
    return out.str();
}

std::string host_memory_problem(uint64_t needed, std::optional<uint64_t> limit) {
    const std::optional<uint64_t> available = limit ? limit : available_host_memory();
    if (!available || needed <= *available) return "";
    return "needs about " + gib(needed) + " of host memory, " + gib(*available) +
           (limit ? " allowed by --max-host-memory" : " available; --max-host-memory to override");
}

uint64_t parse_host_memory_limit(const std::string& text) {
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(value > 0) || value > 1e9 || std::isspace(static_cast<unsigned char>(text[0])))
        throw std::runtime_error("--max-host-memory " + text + ": expected a positive number of GiB, e.g. 64 or 0.5");
    return uint64_t(value * double(1ull << 30));
}

}  // namespace kpu::hw
