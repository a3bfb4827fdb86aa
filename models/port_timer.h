// The timing of one shared resource (a memory's ports, a tile's network link): the single
// place where bandwidth, latency and contention are computed. Plain C++, no SystemC, times
// in femtoseconds so that fractional picosecond burst times (64 B at 192 GB/s = 333.3 ps)
// never accumulate rounding error over millions of bursts.
#pragma once

#include <cstddef>
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

    /// What went through: counted here so that b_transport and the movers' DMI path, which
    /// both book every burst, count it the same way.
    struct Traffic {
        uint64_t reads = 0, writes = 0;
        uint64_t bytes_read = 0, bytes_written = 0;
    };

    /// `owner` tells initiators apart (any stable pointer, e.g. the initiator's payload), so
    /// a booking can say whether it queued behind someone else rather than behind itself.
    Booking book(Fs arrival, uint64_t bytes, const void* owner = nullptr, bool write = false) {
        if (write)
            ++traffic_.writes, traffic_.bytes_written += bytes;
        else
            ++traffic_.reads, traffic_.bytes_read += bytes;
        // Earliest-free port; with one or two ports (every config so far) this is one compare.
        size_t port = 0;
        for (size_t p = 1; p < free_.size(); ++p)
            if (free_[p] < free_[port]) port = p;
        if (bytes != cached_bytes_) cached_bytes_ = bytes, cached_occupancy_ = occupancy(bytes);
        const Fs occupied = cached_occupancy_;
        const Fs start = arrival > free_[port] ? arrival : free_[port];
        const bool contended = start > arrival && owner_[port] != owner;
        free_[port] = start + occupied;
        owner_[port] = owner;
        busy_ += occupied;
        return {start, start + latency_ + occupied, contended};
    }

    Fs occupancy(uint64_t bytes) const { return Fs(double(bytes) * fs_per_byte_ + 0.5); }
    Fs latency() const { return latency_; }
    uint32_t ports() const { return uint32_t(free_.size()); }
    Fs busy() const { return busy_; }  ///< sum of occupancies booked, all ports
    const Traffic& traffic() const { return traffic_; }

private:
    std::vector<Fs> free_;            ///< per port: when it can start the next burst
    std::vector<const void*> owner_;  ///< per port: who booked it last
    double fs_per_byte_;
    Fs latency_;
    Fs busy_ = 0;
    Traffic traffic_;
    uint64_t cached_bytes_ = 0;  ///< nearly every burst has the same size: skip the multiply
    Fs cached_occupancy_ = 0;
};

/// Femtoseconds of `cycles` at `hz`, rounded to the nearest femtosecond.
Fs cycles_to_fs(uint64_t cycles, double hz);

}  // namespace kpu::model
