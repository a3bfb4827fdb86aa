// The timing of one shared resource (a memory's ports, a tile's network link): the single
// place where bandwidth, latency and contention are computed. Plain C++, no SystemC, times
// in femtoseconds so that fractional picosecond burst times (64 B at 192 GB/s = 333.3 ps)
// never accumulate rounding error over millions of bursts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace kpu::model {

/// Simulated time in femtoseconds (uint64: up to about 5 hours of simulated time).
using Fs = uint64_t;

constexpr Fs kFsPerSecond = 1'000'000'000'000'000ull;

/// `ports` independent ports, each moving `bytes_per_s`, each answering after `latency`.
/// A burst of N bytes arriving at t takes the port that can start it first:
///   start = the earliest time >= t at which the port is idle for N / bandwidth;
///   done = start + latency + N / bandwidth
/// so latency pipelines (the next burst may start before this one is done) while bandwidth
/// serialises, and contention between initiators comes out of the same two numbers.
///
/// Each port keeps a calendar of its busy intervals, not only the time it is next free:
/// initiators run ahead of the kernel by up to a quantum (temporal decoupling), so bursts
/// are booked out of time order, and a burst booked early must not push every later-booked
/// but earlier-arriving burst behind it. A burst fills the first idle gap that holds it.
/// For bursts booked in time order (one initiator, or a kernel-synchronised model) this is
/// exactly "start = max(t, free)". Intervals that touch are merged; intervals older than
/// the horizon behind the latest arrival are dropped, and the gap search looks at a bounded
/// number of intervals, so booking stays O(log n).
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
    Booking book(Fs arrival, uint64_t bytes, const void* owner = nullptr, bool write = false);

    Fs occupancy(uint64_t bytes) const { return Fs(double(bytes) * fs_per_byte_ + 0.5); }
    Fs latency() const { return latency_; }
    uint32_t ports() const { return uint32_t(ports_.size()); }
    Fs busy() const { return busy_; }  ///< sum of occupancies booked, all ports
    const Traffic& traffic() const { return traffic_; }

    /// How far behind the latest arrival a booking may still arrive (default 100 us: far
    /// more than any quantum plus path latency).
    void set_horizon(Fs horizon) { horizon_ = horizon; }

private:
    struct Port {
        std::map<Fs, Fs> busy;         ///< start -> end, disjoint, touching ones merged
        const void* owner = nullptr;   ///< who booked it last
    };
    /// Earliest start >= arrival where `port` is idle for `occupied`.
    Fs fit(const Port& port, Fs arrival, Fs occupied) const;
    static void insert(Port& port, Fs start, Fs end);

    std::vector<Port> ports_;
    double fs_per_byte_;
    Fs latency_;
    Fs busy_ = 0;
    Fs latest_arrival_ = 0;
    Fs horizon_ = 100'000'000'000;  ///< 100 us in fs
    Traffic traffic_;
    uint64_t cached_bytes_ = 0;  ///< nearly every burst has the same size: skip the multiply
    Fs cached_occupancy_ = 0;
};

/// Femtoseconds of `cycles` at `hz`, rounded to the nearest femtosecond.
Fs cycles_to_fs(uint64_t cycles, double hz);

}  // namespace kpu::model
