#include "models/port_timer.h"

#include <algorithm>

namespace kpu::model {

Fs cycles_to_fs(uint64_t cycles, double hz) { return Fs(double(cycles) * double(kFsPerSecond) / hz + 0.5); }

PortTimer::PortTimer(uint32_t ports, double bytes_per_s, double clock_hz, uint32_t latency_cycles)
    : free_(std::max<uint32_t>(ports, 1), 0),
      owner_(free_.size(), nullptr),
      fs_per_byte_(double(kFsPerSecond) / bytes_per_s),
      latency_(cycles_to_fs(latency_cycles, clock_hz)) {}

PortTimer::Booking PortTimer::book(Fs arrival, uint64_t bytes, const void* owner) {
    // Earliest-free port; with one or two ports (every config so far) this is one compare.
    auto port = free_.begin();
    for (auto p = free_.begin() + 1; p < free_.end(); ++p)
        if (*p < *port) port = p;
    const Fs occupied = occupancy(bytes);
    const Fs start = std::max(arrival, *port);
    const auto index = size_t(port - free_.begin());
    const bool contended = start > arrival && owner_[index] != owner;
    *port = start + occupied;
    owner_[index] = owner;
    busy_ += occupied;
    return {start, start + latency_ + occupied, contended};
}

}  // namespace kpu::model
