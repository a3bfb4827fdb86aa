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
/// number of intervals.
///
/// Cost: a port's calendar is a sorted array of intervals, not a tree, and its newest
/// interval lives beside it in the PortTimer itself. Almost every booking lands at the end
/// (in time order, or queued behind the newest interval and merged into it): a few compares
/// on one or two cache lines, inline, no allocation. An out-of-order one lands some
/// intervals before the end, found by galloping back from the end and bisecting, and is
/// inserted by moving the intervals after it. Dropping old intervals advances a head index;
/// with a floor (see book) a calendar holds only the intervals still ahead of the kernel,
/// about a quantum's worth. The results are exactly those of the straightforward calendar
/// (a std::map per port, kept in tests/models/port_timer_test.cpp as the specification).
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
    /// `floor` is a promise that no booking, by anyone, will ever arrive before it (a
    /// SystemC caller passes the kernel's current time: every model books at now + delay);
    /// busy intervals that end by then can no longer matter and are forgotten. 0: no promise.
    /// Inline: the common cases (in time order, or queued behind the newest burst) cost a
    /// few compares; a burst that fills a gap before the newest one takes book_gap().
    Booking book(Fs arrival, uint64_t bytes, const void* owner = nullptr, bool write = false, Fs floor = 0) {
        if (write)
            ++traffic_.writes, traffic_.bytes_written += bytes;
        else
            ++traffic_.reads, traffic_.bytes_read += bytes;
        if (bytes != cached_bytes_) new_size(bytes);
        return reserve(arrival, cached_occupancy_, cached_occupancy_, owner, floor);
    }

    /// A train: `bursts` bursts of one initiator, `bytes` in all, the first arriving at
    /// `first`, the last at `last` (evenly spaced between), `first_bytes` and `last_bytes`
    /// the sizes of the first and the last burst. Booked as one busy interval per port of
    /// the bursts' summed occupancy (split over the ports, burst by burst in turn, when the
    /// timer has several) instead of one per burst: the bursts' comb is compressed to the
    /// front of the train. For a lone initiator the times are those of booking every burst
    /// (up to rounding): the first burst leaves at start + latency + its occupancy (cut
    /// through to the next stage), the last at the later of the port's end of the train and
    /// its own arrival + occupancy, + latency. One burst is exactly book().
    struct TrainBooking {
        Fs first_done = 0;  ///< when the first burst is done (the next stage may start)
        Fs last_done = 0;   ///< when the last burst is done
        bool contended = false;
    };
    TrainBooking book_train(Fs first, Fs last, uint32_t bursts, uint64_t bytes, uint64_t first_bytes,
                            uint64_t last_bytes, const void* owner = nullptr, bool write = false, Fs floor = 0) {
        if (bursts > 1) return book_bursts(first, last, bursts, bytes, first_bytes, last_bytes, owner, write, floor);
        const Booking b = book(first, bytes, owner, write, floor);
        return {b.done, b.done, b.contended};
    }

    Fs occupancy(uint64_t bytes) const { return Fs(double(bytes) * fs_per_byte_ + 0.5); }
    Fs latency() const { return latency_; }
    uint32_t ports() const { return uint32_t(1 + more_.size()); }
    Fs busy() const { return busy_; }  ///< sum of occupancies booked, all ports
    const Traffic& traffic() const { return traffic_; }

    /// How far behind the latest arrival a booking may still arrive (default 100 us: far
    /// more than any quantum plus path latency).
    void set_horizon(Fs horizon) { horizon_ = horizon; }

private:
    /// Books `occupied` on the port that can start it first; with one or two ports (every
    /// shipped config) this is one or two looks at the newest interval. `unit` is the part
    /// it may be split at (a train's bursts): booked in time order it is one interval; a
    /// late one fills earlier idle gaps that hold at least one unit, in order, as bursts
    /// booked one by one would. `done` is then the last part's end + latency.
    Booking reserve(Fs arrival, Fs occupied, Fs unit, const void* owner, Fs floor) {
        busy_ += occupied;
        Port* best = &first_;
        Fs start = 0;
        if (!first_.at_end(arrival, start)) return book_gap(arrival, occupied, unit, owner, floor);
        for (size_t p = 0; p < more_.size() && start > arrival; ++p) {
            Fs s = 0;
            if (!more_[p].at_end(arrival, s)) return book_gap(arrival, occupied, unit, owner, floor);
            if (s < start) start = s, best = &more_[p];
        }
        Port& port = *best;
        const bool contended = start > arrival && port.owner != owner;
        port.book(start, start + occupied, shortest_);
        finish(port, arrival, owner, floor);
        return {start, start + latency_ + occupied, contended};
    }

    struct Interval {
        Fs start, end;
    };
    static constexpr Fs kNever = ~Fs(0);

    /// One port's calendar: busy intervals, sorted by start, disjoint, touching ones merged.
    /// The newest one is `last` (when `open`); the older ones are older[head, size()), the
    /// entries before `head` were dropped and are reclaimed in bulk. `front_end` caches the
    /// end of the oldest one in `older` (kNever when there is none).
    ///
    /// Gap i is the idle time between interval i and interval i + 1 (older.size() being
    /// `last`). Every gap from `small_from` on is shorter than the timer's shortest burst,
    /// so a burst that has to wait behind interval small_from or later fits nowhere before
    /// the newest interval's end: the comb a streaming initiator leaves (bursts with slivers
    /// between them) costs no walk. The bound only ever errs high.
    struct Port {
        Interval last{0, 0};
        bool open = false;
        const void* owner = nullptr;  ///< who booked it last
        Fs front_end = kNever;
        size_t head = 0;
        size_t small_from = 0;
        std::vector<Interval> older;
        /// Where fit() found the gap: older index of the first interval after it, for insert.
        mutable size_t hint_next = 0;
        mutable Fs hint_start = kNever;

        /// The start fit() would give when it is at or after the newest interval's start
        /// (then no earlier gap can hold the burst); false when before (a gap search).
        bool at_end(Fs arrival, Fs& start) const {
            if (!open || arrival >= last.end) return start = arrival, true;  // in time order
            if (arrival >= last.start) return start = last.end, true;        // queues behind the newest
            return false;
        }
        /// Books [start, end): appended or merged when it starts after the newest interval
        /// does (nearly always), else inserted. `shortest` is the timer's shortest burst.
        void book(Fs start, Fs end, Fs shortest) {
            if (open && start > last.start) {
                if (last.end == start) {  // touches it: merged
                    last.end = end;
                    return;
                }
                if (head == older.size()) front_end = last.end;
                older.push_back(last);
                if (start - last.end >= shortest) small_from = older.size();  // a gap a burst fits
            } else if (open) {
                return insert(start, end);
            }
            last = {start, end};
            open = true;
        }
        size_t size() const { return older.size() - head + (open ? 1 : 0); }
        /// Drops the oldest intervals that end by `t`, keeping the newest one.
        void drop_before(Fs t);
        void compact();
        /// The general insertion with merging, as into a std::map keyed by start, for a
        /// burst that starts before the newest interval does.
        void insert(Fs start, Fs end);
        /// First live interval of `older` whose start is > t (older.size() if none).
        size_t upper_bound(Fs t) const;
        /// Earliest start >= arrival where the port is idle for `occupied`.
        Fs fit(Fs arrival, Fs occupied, Fs shortest) const;
        /// How long the port stays idle from `start`, which fit() just returned (kNever: for
        /// ever, after the newest interval).
        Fs room(Fs start) const;
    };

    /// A burst size other than the last one's: its occupancy, and the shortest so far.
    void new_size(uint64_t bytes);
    /// book_train() of two or more bursts.
    TrainBooking book_bursts(Fs first, Fs last, uint32_t bursts, uint64_t bytes, uint64_t first_bytes,
                             uint64_t last_bytes, const void* owner, bool write, Fs floor);
    /// Keeps shortest_ (and what the ports know of their short gaps) true for `occupied`.
    void note_occupancy(Fs occupied);
    /// The general case: some port has to search its calendar for a gap.
    Booking book_gap(Fs arrival, Fs occupied, Fs unit, const void* owner, Fs floor);
    /// Owner, and the intervals that can no longer matter: older than the horizon behind the
    /// latest arrival, or ended by the floor. The newest interval always stays.
    void finish(Port& port, Fs arrival, const void* owner, Fs floor) {
        port.owner = owner;
        // front_end is kNever unless `older` holds an interval, so these are cheap misses.
        if (arrival > latest_arrival_) {
            latest_arrival_ = arrival;
            if (latest_arrival_ > horizon_ && port.front_end < latest_arrival_ - horizon_)
                port.drop_before(latest_arrival_ - horizon_ - 1);
        }
        if (port.front_end <= floor) port.drop_before(floor);
    }

    // Hot fields first: a booking touches these and first_ (one or two cache lines).
    uint64_t cached_bytes_ = 0;  ///< nearly every burst has the same size: skip the multiply
    Fs cached_occupancy_ = 0;
    Fs shortest_ = kNever;  ///< shortest occupancy booked so far
    Fs latency_;
    Fs busy_ = 0;
    Fs latest_arrival_ = 0;
    Fs horizon_ = 100'000'000'000;  ///< 100 us in fs
    Traffic traffic_;
    Port first_;
    std::vector<Port> more_;  ///< ports 1 .. ports-1
    double fs_per_byte_;
};

/// Femtoseconds of `cycles` at `hz`, rounded to the nearest femtosecond.
Fs cycles_to_fs(uint64_t cycles, double hz);

}  // namespace kpu::model
