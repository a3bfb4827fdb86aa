// The timing of one data mover's engine on its DMI path, in plain C++ (no kernel): when the
// engine issues each burst, how consecutive bursts between the same two regions gather into
// a train booked at once on every stage of the path, and when the mover must wait for the
// kernel. The Mover moves the bytes and does the waiting; this decides every time.
//
// Engine: a serialising resource; a burst of N bytes is issued at the later of the engine's
// next free time and the kernel's time, and occupies it N / bandwidth.
// Stages: each books the burst (or the train) and hands it on at a whole kernel tick, as
// b_transport through the routers and the memory does, source stages then destination ones.
// Trains: up to train_cap() bytes (train_bytes, at least a burst; kAloneFactor x that while
// the mover's last kAloneTrains trains queued behind no other initiator on any stage);
// train_bytes 0 books every burst on its own.
// Pacing: the engine does not issue a burst whose predecessor completes more than a quantum
// ahead (its buffer is finite); the mover syncs when it is a quantum ahead of the kernel, or
// once per train_cap() bytes it moved while contended, so contending movers interleave at
// that grain.
#pragma once

#include <algorithm>
#include <cstdint>

#include "models/kernel_ticks.h"
#include "models/port_timer.h"
#include "models/timing_path.h"

namespace kpu::model {

class TrainBooker {
public:
    static constexpr uint32_t kAloneTrains = 2, kAloneFactor = 4;

    /// `owner` tells this mover's bookings apart from other initiators' on shared stages
    /// (PortTimer::book); `quantum_fs` as Mover::set_quantum.
    TrainBooker(double bytes_per_s, KernelTicks ticks, Fs quantum_fs, const void* owner)
        : fs_per_byte_(double(kFsPerSecond) / bytes_per_s), ticks_(ticks), quantum_(quantum_fs), owner_(owner) {}

    void set_quantum(Fs quantum_fs) { quantum_ = quantum_fs; }
    void set_train_bytes(uint32_t bytes) { train_bytes_ = bytes; }

    // --- the kernel and the transfer ---
    /// The kernel's time, as the mover last saw it (after a wait, or at a transfer's start).
    void set_now(Fs now) { now_ = now; }
    Fs now() const { return now_; }
    /// The burst size of the transfer about to run.
    void set_burst(uint64_t burst) { burst_ = burst; }
    /// When the engine can issue its next burst.
    Fs engine_free() const { return engine_free_; }
    Fs next_issue() const { return std::max(engine_free_, now_); }
    /// The mover went idle: in step with the kernel, and what it knew of the ports is stale.
    void idle() { contended_bytes_ = 0, alone_trains_ = 0; }

    // --- one burst at a time (b_transport, transposes) ---
    /// The engine issues a burst of `bytes`; returns when.
    Fs issue(uint32_t bytes) {
        const Fs at = next_issue();
        engine_free_ = at + occupancy(bytes);
        return at;
    }
    /// Books one burst arriving at `at` on every stage of `path`; returns when it is done.
    Fs book(const TimingPath& path, Fs at, uint32_t bytes, bool write) {
        // Nobody books before the kernel's time (now_): the floor that lets a port forget its past.
        Fs t = ticks_.ceil(at);
        for (uint32_t i = 0; i < path.count; ++i) {
            const PortTimer::Booking b = path.stages[i]->book(t, bytes, owner_, write, now_);
            contended_ |= b.contended;
            t = ticks_.ceil(b.done);
        }
        return t;
    }
    /// Whether the current burst (its read and its write) queued behind another initiator:
    /// cleared at each read, set by bookings here and by b_transport (mark_contended).
    bool contended() const { return contended_; }
    void clear_contended() { contended_ = false; }
    void mark_contended() { contended_ = true; }

    // --- trains ---
    bool train_empty() const { return train_.bursts == 0; }
    /// Adds bursts of `n` bytes to the train, from a stretch of `left` bytes that both regions
    /// hold: as many whole bursts as the stretch and the train have room for when n is a
    /// whole burst, else one. Returns the bytes added.
    uint64_t add(uint32_t n, uint64_t left) {
        if (train_.bursts == 0) train_.cap = next_train_cap();
        uint64_t count = n == burst_ ? std::min(left / burst_, (train_.cap - train_.bytes) / burst_) : 1;
        count = std::max<uint64_t>(count, 1);
        add_bursts(count, n);
        return count * n;
    }
    /// No further whole burst fits: book the train now.
    bool train_full() const { return train_.bursts && train_.bytes + burst_ > train_.cap; }
    struct Booked {
        Fs first_at = 0;  ///< when the engine issued the first burst
        Fs done = 0;      ///< when the last burst's write is done
        uint32_t bursts = 0;
        uint64_t bytes = 0;
    };
    /// Books the train on every stage from `from` (reads) to `to` (writes) and empties it.
    Booked book_train(const TimingPath& from, const TimingPath& to);

    // --- pacing ---
    /// After `bytes` were booked, done at `write_done`: true when the mover must wait for
    /// the kernel now (until engine_free(); a delta while contended), then call synced().
    bool pace(Fs write_done, uint64_t bytes) {
        if (write_done > quantum_) engine_free_ = std::max(engine_free_, write_done - quantum_);
        if (contended_) contended_bytes_ += std::max(bytes, burst_);
        return contended_bytes_ >= train_cap() || engine_free_ >= now_ + quantum_;
    }
    void synced(Fs now) { now_ = now, contended_bytes_ = 0; }

    /// The current transfer's train size: train_bytes, at least a burst.
    uint64_t train_cap() const { return std::max<uint64_t>(train_bytes_, burst_); }
    /// The size of the train about to start (see the header).
    uint64_t next_train_cap() const {
        return train_bytes_ && alone_trains_ >= kAloneTrains ? kAloneFactor * train_cap() : train_cap();
    }

private:
    /// Bursts issued but not yet booked, and when the engine issued the first and the last.
    struct Train {
        uint32_t bursts = 0;
        uint64_t bytes = 0;
        uint32_t first_bytes = 0, last_bytes = 0;
        Fs first_at = 0, last_at = 0;
        uint64_t cap = 0;  ///< bytes it may gather (next_train_cap() when its first burst joined)
    };
    /// The engine's time for a burst of `bytes` (nearly every burst has the same size: the
    /// last one's is kept, no multiply).
    Fs occupancy(uint32_t bytes) {
        if (bytes != cached_bytes_) cached_bytes_ = bytes, cached_occupancy_ = Fs(double(bytes) * fs_per_byte_ + 0.5);
        return cached_occupancy_;
    }
    /// Issues `count` bursts of `n` bytes in closed form: the first at next_issue(), each
    /// further one an occupancy later.
    void add_bursts(uint64_t count, uint32_t n) {
        const Fs occupied = occupancy(n);
        const Fs at = next_issue();
        if (train_.bursts == 0) train_.first_at = at, train_.first_bytes = n;
        train_.last_at = at + Fs(count - 1) * occupied;
        train_.last_bytes = n;
        engine_free_ = train_.last_at + occupied;
        train_.bursts += uint32_t(count);
        train_.bytes += count * n;
    }

    double fs_per_byte_;
    KernelTicks ticks_;
    Fs quantum_;
    const void* owner_;
    uint32_t train_bytes_ = 0;
    uint64_t burst_ = 1;
    Fs now_ = 0;
    Fs engine_free_ = 0;
    bool contended_ = false;
    uint64_t contended_bytes_ = 0;  ///< bytes booked while contended since the mover last waited
    uint32_t alone_trains_ = 0;     ///< trains in a row that queued behind nobody (up to kAloneTrains)
    uint32_t cached_bytes_ = 0;     ///< see occupancy()
    Fs cached_occupancy_ = 0;
    Train train_;
};

}  // namespace kpu::model
