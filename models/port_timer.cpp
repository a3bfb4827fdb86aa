#include "models/port_timer.h"

#include <algorithm>

namespace kpu::model {

Fs cycles_to_fs(uint64_t cycles, double hz) { return Fs(double(cycles) * double(kFsPerSecond) / hz + 0.5); }

PortTimer::PortTimer(uint32_t ports, double bytes_per_s, double clock_hz, uint32_t latency_cycles)
    : free_(std::max<uint32_t>(ports, 1), 0),
      owner_(free_.size(), nullptr),
      fs_per_byte_(double(kFsPerSecond) / bytes_per_s),
      latency_(cycles_to_fs(latency_cycles, clock_hz)) {}

}  // namespace kpu::model
