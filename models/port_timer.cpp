#include "models/port_timer.h"

#include <algorithm>
#include <iterator>

namespace kpu::model {

namespace {
/// Gap search stops after this many busy intervals and books after the last one looked at:
/// a bound on the cost of a booking when a port is fragmented into many tiny gaps.
constexpr int kMaxIntervalsSearched = 32;
}  // namespace

Fs cycles_to_fs(uint64_t cycles, double hz) { return Fs(double(cycles) * double(kFsPerSecond) / hz + 0.5); }

PortTimer::PortTimer(uint32_t ports, double bytes_per_s, double clock_hz, uint32_t latency_cycles)
    : ports_(std::max<uint32_t>(ports, 1)),
      fs_per_byte_(double(kFsPerSecond) / bytes_per_s),
      latency_(cycles_to_fs(latency_cycles, clock_hz)) {}

Fs PortTimer::fit(const Port& port, Fs arrival, Fs occupied) const {
    if (port.busy.empty() || arrival >= std::prev(port.busy.end())->second) return arrival;  // in time order
    auto it = port.busy.upper_bound(arrival);
    Fs start = arrival;
    if (it != port.busy.begin()) start = std::max(start, std::prev(it)->second);
    for (int searched = 0; it != port.busy.end() && it->first < start + occupied; ++it) {
        start = std::max(start, it->second);
        if (++searched == kMaxIntervalsSearched) return std::max(start, std::prev(port.busy.end())->second);
    }
    return start;
}

void PortTimer::insert(Port& port, Fs start, Fs end) {
    auto next = port.busy.lower_bound(start);
    if (next != port.busy.begin()) {
        auto prev = std::prev(next);
        if (prev->second == start) {  // touches the interval before: extend it
            start = prev->first;
            port.busy.erase(prev);
        }
    }
    if (next != port.busy.end() && next->first == end) {  // touches the one after
        end = next->second;
        next = port.busy.erase(next);
    }
    port.busy.emplace_hint(next, start, end);
}

PortTimer::Booking PortTimer::book(Fs arrival, uint64_t bytes, const void* owner, bool write) {
    if (write)
        ++traffic_.writes, traffic_.bytes_written += bytes;
    else
        ++traffic_.reads, traffic_.bytes_read += bytes;
    if (bytes != cached_bytes_) cached_bytes_ = bytes, cached_occupancy_ = occupancy(bytes);
    const Fs occupied = cached_occupancy_;
    // The port that can start it first; with one or two ports (every config so far) this is
    // one or two searches.
    size_t best = 0;
    Fs start = fit(ports_[0], arrival, occupied);
    for (size_t p = 1; p < ports_.size() && start > arrival; ++p) {
        const Fs s = fit(ports_[p], arrival, occupied);
        if (s < start) start = s, best = p;
    }
    Port& port = ports_[best];
    const bool contended = start > arrival && port.owner != owner;
    insert(port, start, start + occupied);
    port.owner = owner;
    busy_ += occupied;
    if (arrival > latest_arrival_) {
        latest_arrival_ = arrival;
        const Fs oldest = latest_arrival_ > horizon_ ? latest_arrival_ - horizon_ : 0;
        while (port.busy.size() > 1 && port.busy.begin()->second < oldest) port.busy.erase(port.busy.begin());
    }
    return {start, start + latency_ + occupied, contended};
}

}  // namespace kpu::model
