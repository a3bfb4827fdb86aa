// The timing of one shared resource (a memory's ports, a tile's network link): the single
// place where bandwidth, latency and contention are computed. Plain C++, no SystemC, times
// in femtoseconds so that fractional picosecond burst times (64 B at 192 GB/s = 333.3 ps)
// never accumulate rounding error over millions of bursts.
#pragma once

#include <cstdint>
#include <vector>

namespace kpu::model {

/// Simulated time in femtoseconds (uint64: up to about 5 hours of simulated time).
using Fs = uint64_t;

constexpr Fs kFsPerSecond = 1'000'000'000'000'000ull;

/// `ports` independent ports, each moving `bytes_per_s`, each answering after `latency`.
/// A burst of N bytes arriving at t takes the earliest-free port p:
///   start = max(t, free[p]);  done = start + latency + N / bandwidth;  free[p] = start + N / bandwidth
/// so latency pipelines (the next burst may start before this one is done) while bandwidth
/// serialises, and contention between initiators comes out of the same two numbers.
class PortTimer {
public:
    struct Booking {
        Fs start = 0;
        Fs done = 0;
        bool contended = false;  ///< had to wait behind another owner's burst
    };

    /// latency_cycles are cycles of clock_hz (the level's clock domain from the config).
    PortTimer(uint32_t ports, double bytes_per_s, double clock_hz, uint32_t latency_cycles);

    /// `owner` tells initiators apart (any stable pointer, e.g. the initiator's payload), so
    /// a booking can say whether it queued behind someone else rather than behind itself.
    Booking book(Fs arrival, uint64_t bytes, const void* owner = nullptr);

    Fs occupancy(uint64_t bytes) const { return Fs(double(bytes) * fs_per_byte_ + 0.5); }
    Fs latency() const { return latency_; }
    uint32_t ports() const { return uint32_t(free_.size()); }
    Fs busy() const { return busy_; }  ///< sum of occupancies booked, all ports

private:
    std::vector<Fs> free_;            ///< per port: when it can start the next burst
    std::vector<const void*> owner_;  ///< per port: who booked it last
    double fs_per_byte_;
    Fs latency_;
    Fs busy_ = 0;
};

/// Femtoseconds of `cycles` at `hz`, rounded to the nearest femtosecond.
Fs cycles_to_fs(uint64_t cycles, double hz);

}  // namespace kpu::model
