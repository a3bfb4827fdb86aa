// What every data mover has in common (DmaEngine, BlockMover, Streamer): a TLM-2.0 initiator
// that executes hw::Transfer descriptors (2D strided copy, identity or transpose) with real
// bytes, one b_transport per burst. The three kinds differ only in their config numbers and
// where the platform wires them; any two decodable device addresses are a legal transfer.
//
// Socket: `socket` (initiator, to a Router). Time: the engine's own bandwidth is a
// serialising resource (engine_free += N / engine bandwidth per burst); each burst's read is
// issued at the engine's time, its write at the read's completion, so reads and writes of
// consecutive bursts overlap and a long transfer runs at min(source, destination, network,
// engine) bandwidth. Temporal decoupling: the engine runs ahead of the kernel by at most one
// quantum before it syncs (one wait() per quantum, not per burst); while a burst queues
// behind another initiator's (ContentionExtension) it syncs each time it has moved a train's
// worth of such bytes (set_train_bytes; a burst at 0), so contending movers interleave at
// that grain.
//
// Command interface (for the sequencer; usable from an SC_THREAD or an SC_METHOD):
//   if (m.can_accept()) m.try_submit(t);   // SC_METHOD: false when the queue is full
//   m.submit(t);                           // SC_THREAD: waits on accept_event() while full
//   m.set_completion_callback(cb);         // cb(Completion{id, status, start, end, bytes})
// A descriptor holds one of the config's queue_depth slots from submit until its completion
// callback. Completions come at the simulated time the last byte is written, from an
// SC_METHOD (the callback must not wait), in completion-time order (ties: submit order).
// An illegal descriptor or address completes with a non-Ok status plus a report naming the
// mover, the transfer id, the address and the length; the mover never stops.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "hardware/address_map.h"
#include "hardware/config.h"
#include "hardware/transfer.h"
#include "models/contention.h"
#include "models/helper_thread.h"
#include "models/sim_time.h"
#include "models/timing_path.h"

namespace kpu::model {

enum class TransferStatus : uint8_t {
    Ok,
    BadDescriptor,  ///< shape, strides or element size make no sense; nothing was moved
    AccessError,    ///< a burst got an error response (address not mapped, crosses an instance, ...)
};

const char* to_string(TransferStatus status);

struct Completion {
    uint64_t id = 0;
    TransferStatus status = TransferStatus::Ok;
    sc_core::sc_time start;  ///< first burst issued
    sc_core::sc_time end;    ///< last byte written (== the time the completion is delivered)
    uint64_t bytes = 0;      ///< bytes written to the destination
    bool ok() const { return status == TransferStatus::Ok; }
};

/// Counters for the stats report.
struct MoverStats {
    uint64_t transfers = 0;     ///< completed descriptors, including failed ones
    uint64_t failed = 0;
    uint64_t bytes = 0;         ///< bytes moved
    uint64_t transactions = 0;  ///< b_transport calls (reads + writes)
    uint64_t dmi_accesses = 0;  ///< reads + writes copied through DMI and timed on the same ports
    uint64_t syncs = 0;         ///< waits for the kernel inside transfers (per quantum, or per train_bytes while contended)
    uint64_t trains = 0;        ///< runs of DMI bursts timed as one booking per stage (see set_train_bytes)
    uint64_t dmi_grants = 0;    ///< DMI regions asked for (each once while the mover's index keeps it)
    Fs busy = 0;                ///< union over transfers of [start, end], femtoseconds
};

class Mover : public sc_core::sc_module {
public:
    tlm_utils::simple_initiator_socket<Mover> socket;

    using CompletionCallback = std::function<void(const Completion&)>;

    bool can_accept() const { return in_flight_ < queue_depth_; }
    /// Notified whenever a slot frees (a completion was delivered): completion_event().
    const sc_core::sc_event& accept_event() const { return events().completion; }
    /// Queues the descriptor if a slot is free; false (nothing queued) otherwise.
    bool try_submit(const hw::Transfer& transfer);
    /// From an SC_THREAD: waits for a free slot, then queues (always true). Elsewhere: as
    /// try_submit, plus a warning when the queue is full.
    bool submit(const hw::Transfer& transfer);
    void set_completion_callback(CompletionCallback callback) { callback_ = std::move(callback); }
    /// Notified (immediately, from the completion method) after each completion callback.
    const sc_core::sc_event& completion_event() const { return events().completion; }

    uint32_t queue_depth() const { return queue_depth_; }
    uint32_t in_flight() const { return in_flight_; }  ///< submitted, not yet completed
    const MoverStats& stats() const { return stats_; }
    double bandwidth() const { return bandwidth_; }    ///< bytes per second
    const char* kind() const { return kind_; }

    /// How far the engine may run ahead of the kernel; a larger quantum simulates faster,
    /// a smaller one interleaves contending movers more finely.
    void set_quantum(const sc_core::sc_time& quantum) { quantum_ = time_.to_fs(quantum); }
    /// Fast path (default on): copy bytes through DMI and book the same ports a b_transport
    /// would (TimingPath); timing, contention and data are identical, only faster. Off: one
    /// b_transport per read and per write of every burst.
    void set_dmi(bool enabled) { dmi_enabled_ = enabled, forget_regions(); }
    /// Timing granularity of the DMI path: consecutive bursts between the same two regions
    /// are booked as one train of up to `bytes` per stage (PortTimer::book_train), and a
    /// contended mover syncs once per `bytes` it moved (trains of one strided transfer's short
    /// rows together), not per burst. A lone transfer's times are those of per-burst booking
    /// up to rounding; contending movers interleave `bytes` at a time. A mover whose last two
    /// trains queued behind nobody books trains of 4 x `bytes` until one does (docs/models.md,
    /// Trains). 0 (or anything up to a burst): every burst booked on its own, exactly as
    /// b_transport would.
    void set_train_bytes(uint32_t bytes) { train_bytes_ = bytes; }
    /// Moves the bytes of DMI stretches on `helper` while the simulation goes on: a transfer
    /// hands its stretches over when it has booked them all, and its completion waits for
    /// them before it is delivered (helper_thread.h says why that is exact). Anything this
    /// mover reads or writes on the simulation thread (b_transport, transposes) first waits
    /// for what it handed over. nullptr (the default): every byte moves inline. Destroy the
    /// helper (which runs what is queued) before the memories its jobs write.
    void set_helper(HelperThread* helper) { helper_ = helper; }

protected:
    Mover(sc_core::sc_module_name name, const char* kind, const hw::Engine& engine, const hw::Config& config,
          const hw::AddressMap& map, const sc_core::sc_time& quantum);

private:
    /// One DMI stretch whose bytes move on the helper (memmove semantics).
    struct Stretch {
        uint8_t* dst;
        const uint8_t* src;
        uint64_t bytes;
    };
    struct Job {
        uint64_t id = 0;
        Fs start = 0, done = 0;
        uint64_t bytes = 0;
        bool started = false;
        std::vector<Stretch> stretches;  ///< not yet handed to helper_
    };
    struct Due {
        Fs done;
        uint64_t seq;
        Completion completion;
        HelperThread::Ticket ticket = 0;  ///< the transfer's stretches on helper_; 0: none
    };
    /// Heap order of due_: earliest completion first, ties in submit order.
    static bool after(const Due& a, const Due& b) { return a.done != b.done ? a.done > b.done : a.seq > b.seq; }

    void run();
    void deliver();
    void execute(const hw::Transfer& transfer);
    bool copy_identity(const hw::Transfer& t, uint32_t burst, Job& job);
    bool copy_transpose(const hw::Transfer& t, uint32_t burst, Job& job);
    const char* validate(const hw::Transfer& t) const;
    uint32_t burst_of(uint64_t addr) const;
    Fs issue(Job& job, uint32_t bytes);
    /// The engine's time for a burst of `bytes` (nearly every burst has the same size: the
    /// last one's is kept, no multiply).
    Fs engine_occupancy(uint32_t bytes) {
        if (bytes != cached_bytes_) cached_bytes_ = bytes, cached_occupancy_ = Fs(double(bytes) * fs_per_byte_ + 0.5);
        return cached_occupancy_;
    }
    bool access(Job& job, tlm::tlm_command command, uint64_t addr, uint8_t* data, uint32_t bytes, Fs at, Fs& done);
    /// One timed read or write: through DMI when it can, else b_transport.
    bool timed(Job& job, tlm::tlm_command command, uint64_t addr, uint8_t* data, uint32_t bytes, Fs at, Fs& done);
    struct Region {
        uint64_t lo = 0, hi = 0;  ///< device addresses [lo, hi); empty matches nothing
        uint8_t* data = nullptr;
        TimingPath path;
    };
    /// Bursts issued but not yet booked: the DMI regions they go between (hence the stages)
    /// and when the engine issued the first and the last one.
    struct Train {
        Region from, to;
        uint32_t bursts = 0;
        uint64_t bytes = 0;
        uint32_t first_bytes = 0, last_bytes = 0;
        Fs first_at = 0, last_at = 0;
        uint64_t cap = 0;  ///< bytes it may gather (next_train_cap() when its first burst joined)
        /// Issues `count` bursts of `n` bytes on the engine of `m`.
        void add(Mover& m, uint64_t count, uint32_t n);
    };
    /// Books a train on every stage of its path, then paces the engine; empties it.
    void run_train(Job& job, Train& train);

    Region* region(uint64_t addr, uint32_t bytes);
    void forget_regions() { regions_.clear(), region_index_.clear(), indexed_ = 0; }
    /// Enters regions_[i] in the index, growing the index first when it holds more granules
    /// than half its slots.
    void index_region(uint32_t i);
    /// Slot of region_index_ for the granule holding `addr`. Runs of kRunGranules granules
    /// keep their order in one cache line of slots (a mover sweeping consecutive regions
    /// finds them side by side); the runs are spread by Fibonacci hashing (the top bits of
    /// run x 2^64 / golden ratio), which places consecutive runs far apart without
    /// collisions and mixes the high address bits in, so that DRAM, L3, L2 and L1 addresses
    /// with the same low bits (a transfer between matching layouts) do not take the same
    /// slots.
    size_t region_slot(uint64_t addr) const {
        const uint64_t g = addr >> granule_shift_;
        return size_t((((g / kRunGranules) * 0x9E3779B97F4A7C15ull) >> run_shift_) * kRunGranules + g % kRunGranules);
    }
    /// Books one burst on every stage of a DMI region's path; returns when it is done.
    Fs book(const TimingPath& path, Fs at, uint32_t bytes, bool write);
    /// The current transfer's train size: train_bytes_, at least a burst.
    uint64_t train_cap() const { return std::max<uint64_t>(train_bytes_, burst_); }
    /// The size of the train about to start: kAloneFactor x train_cap() while the mover
    /// streams alone (its last kAloneTrains trains queued behind no other initiator on any
    /// stage), train_cap() otherwise, and always with per-burst booking (train_bytes_ 0).
    uint64_t next_train_cap() const {
        return train_bytes_ && alone_trains_ >= kAloneTrains ? kAloneFactor * train_cap() : train_cap();
    }
    /// After `bytes` were booked, done at `write_done`: the engine's buffer, then a sync when
    /// the mover is a quantum ahead, or has moved a train's worth of contended bytes since
    /// its last sync.
    void pace(Job& job, Fs write_done, uint64_t bytes) {
        job.done = std::max(job.done, write_done);
        // The engine's buffer is finite: it does not issue a burst whose predecessor completes
        // more than one quantum ahead (the quantum exceeds any unloaded path latency, so a lone
        // transfer never stalls on it).
        if (write_done > quantum_) engine_free_ = std::max(engine_free_, write_done - quantum_);
        if (contention_->contended) contended_bytes_ += std::max(bytes, burst_);
        if (contended_bytes_ >= train_cap() || engine_free_ >= now_ + quantum_) sync();
    }
    /// Waits for the kernel: until engine_free_, or a delta while contended.
    void sync();
    /// Hands the job's stretches to helper_ (in order, after everything handed over before).
    void hand_over(Job& job);
    /// Before this mover touches bytes on the simulation thread: hands over the job's
    /// stretches and waits until every stretch handed over so far has moved.
    void settle(Job& job);
    void finish(Job& job, TransferStatus status);
    void enqueue(const hw::Transfer& transfer);

    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) {
        return tlm::TLM_ACCEPTED;  // b_transport only
    }
    void invalidate_direct_mem_ptr(sc_dt::uint64, sc_dt::uint64) { forget_regions(); }

    const char* kind_;
    const hw::Config& config_;
    const hw::AddressMap& map_;
    double bandwidth_;
    double fs_per_byte_;
    uint32_t queue_depth_;
    TimeBase time_;
    Fs quantum_;
    Fs engine_free_ = 0;  ///< when the engine can issue its next burst
    uint32_t train_bytes_ = 0;
    uint64_t burst_ = 1;            ///< the current transfer's burst size
    uint64_t contended_bytes_ = 0;  ///< bytes booked while contended since the mover last waited
    /// Longer trains for a mover streaming alone: after kAloneTrains trains in a row that
    /// queued behind no other initiator, kAloneFactor x train_bytes_ per train until one
    /// does. Measured against per-burst booking it is as faithful as trains of train_bytes_
    /// alone on the regression suites (docs/models.md, Trains), at 29 % fewer trains on t64
    /// 1024^3.
    static constexpr uint32_t kAloneTrains = 2, kAloneFactor = 4;
    uint32_t alone_trains_ = 0;  ///< trains in a row that queued behind nobody (up to kAloneTrains)
    uint32_t cached_bytes_ = 0;  ///< see engine_occupancy()
    Fs cached_occupancy_ = 0;
    Fs now_ = 0;          ///< kernel time, refreshed after every wait of the mover thread
    Fs busy_until_ = 0;
    uint64_t seq_ = 0;
    uint32_t in_flight_ = 0;

    std::deque<hw::Transfer> queue_;
    std::vector<Due> due_;  ///< min-heap on (done, seq)
    CompletionCallback callback_;
    /// The mover's events and processes (run() and deliver()) come with its first descriptor:
    /// most movers of a large SKU never get one, a thread costs a coroutine stack, and an
    /// event made while the platform elaborates a named entry in SystemC's object registry.
    struct Events {
        sc_core::sc_event submit, due, completion;
    };
    mutable std::unique_ptr<Events> events_;
    Events& events() const {
        if (!events_) events_ = std::make_unique<Events>();
        return *events_;
    }
    bool running_ = false;  ///< run() and deliver() spawned

    tlm::tlm_generic_payload trans_;
    ContentionExtension* contention_;  ///< owned by trans_ (freed with it)
    bool dmi_enabled_ = true;
    HelperThread* helper_ = nullptr;
    HelperThread::Ticket handed_ = 0;  ///< the last job handed to helper_ (0: none)
    /// Every DMI grant so far: memories never move or free their pages, so a grant stays
    /// valid until invalidate_direct_mem_ptr, and a mover that cycles through many regions
    /// (L1 buffers, DRAM interleave blocks, rows of a strided tile) asks the router once
    /// each. Found through a direct-mapped index over address granules (no larger than the
    /// smallest region), checked against the region's bounds. The index starts small and
    /// doubles while it holds more granules than half its slots: a Streamer that reaches a
    /// few L1 buffers and L2 banks keeps a few hundred slots (its lookups stay in cache, and
    /// the simulation thread does not fault in 16 KiB for it), a DMA engine sweeping DRAM
    /// the most.
    static constexpr uint32_t kNoRegion = ~0u;
    static constexpr size_t kMinIndexSlots = 256, kMaxIndexSlots = 4096;  ///< powers of two
    std::vector<Region> regions_;
    std::vector<uint32_t> region_index_;
    uint64_t indexed_ = 0;       ///< granules entered in the index since it was last built
    static constexpr uint64_t kRunGranules = 16;  ///< a 64-byte line of uint32_t slots
    uint32_t run_shift_ = 64;                     ///< 64 - log2(region_index_.size() / kRunGranules)
    uint32_t granule_shift_ = 6;  ///< log2 of the granule: at least a burst
    std::vector<uint8_t> staging_, column_;
    MoverStats stats_;
};

}  // namespace kpu::model
