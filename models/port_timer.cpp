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
    : latency_(cycles_to_fs(latency_cycles, clock_hz)),
      more_(std::max<uint32_t>(ports, 1) - 1),
      fs_per_byte_(double(kFsPerSecond) / bytes_per_s) {}

void PortTimer::new_size(uint64_t bytes) {
    cached_bytes_ = bytes;
    cached_occupancy_ = occupancy(bytes);
    note_occupancy(cached_occupancy_);
}

void PortTimer::note_occupancy(Fs occupied) {
    if (occupied >= shortest_) return;
    // Gaps known to be shorter than every burst so far may not be shorter than this one.
    shortest_ = occupied;
    first_.small_from = first_.older.size();
    for (Port& port : more_) port.small_from = port.older.size();
}

PortTimer::TrainBooking PortTimer::book_bursts(Fs first, Fs last, uint32_t bursts, uint64_t bytes,
                                               uint64_t first_bytes, uint64_t last_bytes, const void* owner,
                                               bool write, Fs floor) {
    if (write)
        traffic_.writes += bursts, traffic_.bytes_written += bytes;
    else
        traffic_.reads += bursts, traffic_.bytes_read += bytes;
    // Burst j arrives at first + j * spacing. With several ports, part q takes bursts
    // q, q + parts, q + 2 parts, ... (as alternating bursts would spread over free ports).
    auto occupancy_of = [this](uint64_t n) { return n == cached_bytes_ ? cached_occupancy_ : occupancy(n); };
    const Fs last_occupancy = occupancy_of(last_bytes);
    TrainBooking train;
    if (more_.empty()) {  // one port (most levels): one interval
        const Fs occupied = occupancy(bytes);
        note_occupancy(occupied);
        const Booking b = reserve(first, occupied, occupancy_of(first_bytes), owner, floor);
        train.first_done = b.start + latency_ + occupancy_of(first_bytes);
        train.last_done = std::max(b.done, last + last_occupancy + latency_);
        train.contended = b.contended;
        return train;
    }
    const uint32_t parts = std::min<uint32_t>(ports(), bursts);
    const Fs spacing = (last - first) / (bursts - 1);
    uint64_t left = bytes;
    for (uint32_t q = 0; q < parts; ++q) {
        const uint32_t count = bursts / parts + (q < bursts % parts ? 1 : 0);
        const uint64_t part_bytes = q + 1 == parts ? left : bytes * count / bursts;
        left -= part_bytes;
        const Fs arrival = first + q * spacing, final = arrival + Fs(count - 1) * parts * spacing;
        const Fs occupied = occupancy(part_bytes);
        note_occupancy(occupied);
        const Booking b = reserve(arrival, occupied, occupancy_of(first_bytes), owner, floor);
        if (q == 0) train.first_done = b.start + latency_ + occupancy_of(first_bytes);
        train.last_done = std::max({train.last_done, b.done, final + last_occupancy + latency_});
        train.contended |= b.contended;
    }
    return train;
}

void PortTimer::Port::drop_before(Fs t) {
    // `older` never holds the newest interval (`last` does), so all of it may go.
    while (head < older.size() && older[head].end <= t) ++head;
    front_end = head < older.size() ? older[head].end : kNever;
    if (head >= 32 && head * 2 >= older.size()) compact();
}

void PortTimer::Port::compact() {
    older.erase(older.begin(), older.begin() + std::ptrdiff_t(head));
    small_from = small_from > head ? small_from - head : 0;
    head = 0;
}

size_t PortTimer::Port::upper_bound(Fs t) const {
    // Out-of-order bookings land near the end: gallop back from it, then bisect.
    size_t hi = older.size(), step = 1;
    while (hi > head) {
        const size_t probe = hi - std::min(step, hi - head);
        if (older[probe].start <= t) {
            return size_t(std::upper_bound(older.begin() + std::ptrdiff_t(probe + 1), older.begin() + std::ptrdiff_t(hi),
                                           t, [](Fs value, const Interval& v) { return value < v.start; }) -
                          older.begin());
        }
        hi = probe;
        step *= 2;
    }
    return head;
}

Fs PortTimer::Port::fit(Fs arrival, Fs occupied, Fs shortest) const {
    hint_start = kNever;  // set again below where it finds a gap
    Fs start = arrival;
    if (at_end(arrival, start)) return start;
    // Before the newest interval's start: the first gap after arrival that holds the burst,
    // looking at no more than kMaxIntervalsSearched intervals; past the last one, or when no
    // gap holds it, after the newest interval.
    size_t it = upper_bound(arrival);
    start = arrival;
    if (it != head) start = std::max(start, older[it - 1].end);
    auto found = [&](size_t next) {  // the burst fits before interval `next`
        if (occupied > 0) hint_next = next, hint_start = start;
        return start;
    };
    const size_t n = older.size();
    if (it == n) return last.start >= start + occupied ? found(n) : last.end;
    if (older[it].start >= start + occupied) return found(it);
    // It waits behind interval `it`; from there on only gaps matter.
    if (occupied >= shortest && it >= small_from) return last.end;
    start = older[it].end;
    int searched = 1;
    for (++it; it != n; ++it) {
        if (older[it].start >= start + occupied) return found(it);
        start = std::max(start, older[it].end);
        if (++searched == kMaxIntervalsSearched) return std::max(start, last.end);
    }
    return last.start >= start + occupied ? found(n) : last.end;
}

void PortTimer::Port::insert(Fs start, Fs end) {
    // Only ever for start <= last.start: the interval goes into `older`, or merges into
    // `last`. The first interval starting at or after `start` (older.size(): `last`), from
    // fit()'s hint when it holds:
    size_t next = hint_next;
    if (hint_start != start || next < head || next > older.size() || (next != head && older[next - 1].start > start) ||
        (next != older.size() && older[next].start <= start))
        next = upper_bound(start);
    hint_start = kNever;
    if (next != head && older[next - 1].start == start) --next;
    const Interval& following = next < older.size() ? older[next] : last;
    const bool after_prev = next != head && older[next - 1].end == start;  // touches the one before
    const bool before_next = following.start == end;                       // touches the one after
    if (!after_prev && !before_next && following.start == start)
        return;  // an interval with this start is already there (zero-length bookings only)
    // Where a new interval goes in, a gap is split in two shorter ones; the gaps after it
    // move up by one. (Merging only removes or shortens gaps.)
    auto inserted_at = [&](size_t q) {
        if (q == head)
            small_from = std::max(small_from, q) + 1;  // the gap after it is new
        else if (small_from >= q)
            ++small_from;
    };
    if (next == older.size()) {  // just before the newest
        if (before_next) {
            last.start = after_prev ? older[next - 1].start : start;
            if (after_prev) older.pop_back();
        } else if (after_prev) {
            older[next - 1].end = end;
        } else {
            older.push_back({start, end});
            inserted_at(next);
        }
    } else {
        size_t first = next, past = next;  // [first, past) is replaced by the merged interval
        if (after_prev) start = older[next - 1].start, first = next - 1;
        if (before_next) end = older[next].end, past = next + 1;
        if (first == past) {
            older.insert(older.begin() + std::ptrdiff_t(first), Interval{start, end});
            inserted_at(first);
        } else {
            older[first] = {start, end};
            older.erase(older.begin() + std::ptrdiff_t(first) + 1, older.begin() + std::ptrdiff_t(past));
        }
    }
    front_end = head < older.size() ? older[head].end : kNever;
}

Fs PortTimer::Port::room(Fs start) const {
    if (hint_start != start || hint_next < head || hint_next > older.size()) return kNever;  // after the newest
    return (hint_next < older.size() ? older[hint_next].start : last.start) - start;
}

PortTimer::Booking PortTimer::book_gap(Fs arrival, Fs occupied, Fs unit, const void* owner, Fs floor) {
    Booking first{0, 0, false};
    Fs at = arrival, left = occupied;
    bool booked = false;
    do {
        // The earliest start of one unit (all that is left, if less), over the ports.
        const Fs need = std::min(unit, left);
        Port* best = &first_;
        Fs start = first_.fit(at, need, shortest_);
        for (size_t p = 0; p < more_.size() && start > at; ++p) {
            const Fs s = more_[p].fit(at, need, shortest_);
            if (s < start) start = s, best = &more_[p];
        }
        // As many whole units as the gap there holds (at least one); the rest goes on after.
        Fs take = left;
        if (const Fs room = best->room(start); room < left && unit > 0 && unit < left) take = std::max(unit, room / unit * unit);
        first.contended |= start > at && best->owner != owner;
        best->book(start, start + take, shortest_);
        finish(*best, arrival, owner, floor);
        if (!booked) first.start = start, booked = true;
        left -= take;
        at = start + take;
    } while (left > 0);
    first.done = at + latency_;
    return first;
}

}  // namespace kpu::model
