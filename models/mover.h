// What every data mover has in common (DmaEngine, BlockMover, Streamer): a TLM-2.0 initiator
// that executes hw::Transfer descriptors (strided copy of up to four dimensions with zero
// fill, or a 2D transpose) with real
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
// The parts, each testable alone: TrainBooker (train_booker.h) decides every time on the
// DMI path, DmiCache (dmi_cache.h) holds the granted regions and their timing paths,
// burst_walk.h cuts a transfer into bursts, CopyHandOff moves the bytes inline or on a
// helper thread. The Mover queues descriptors, walks them with those parts, falls back to
// b_transport where there is no DMI, and delivers completions.
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
#include "hardware/enum_names.h"
#include "hardware/transfer.h"
#include "models/contention.h"
#include "models/copy_hand_off.h"
#include "models/dmi_cache.h"
#include "models/helper_thread.h"
#include "models/sim_time.h"
#include "models/train_booker.h"

namespace kpu::model {

enum class TransferStatus : uint8_t {
    Ok,
    BadDescriptor,  ///< shape, strides or element size make no sense; nothing was moved
    AccessError,    ///< a burst got an error response (address not mapped, crosses an instance, ...)
};

inline constexpr hw::EnumName<TransferStatus> kTransferStatusNames[] = {
    {TransferStatus::Ok, "ok"}, {TransferStatus::BadDescriptor, "bad descriptor"}, {TransferStatus::AccessError, "access error"}};
inline const char* to_string(TransferStatus status) { return hw::name_in(kTransferStatusNames, status); }

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
    uint64_t dmi_grants = 0;    ///< DMI regions granted (each once until invalidated: DmiRegions)
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
    void set_quantum(const sc_core::sc_time& quantum) { booker_.set_quantum(time_.to_fs(quantum)); }
    /// Fast path (default on): copy bytes through DMI and book the same ports a b_transport
    /// would (TimingPath); timing, contention and data are identical, only faster. Off: one
    /// b_transport per read and per write of every burst.
    void set_dmi(bool enabled) { dmi_enabled_ = enabled, dmi_.clear(); }
    /// Timing granularity of the DMI path: consecutive bursts between the same two regions
    /// are booked as one train of up to `bytes` per stage (PortTimer::book_train), and a
    /// contended mover syncs once per `bytes` it moved (trains of one strided transfer's short
    /// rows together), not per burst. A lone transfer's times are those of per-burst booking
    /// up to rounding; contending movers interleave `bytes` at a time. A mover whose last two
    /// trains queued behind nobody books trains of 4 x `bytes` until one does (docs/models.md,
    /// Trains). 0 (or anything up to a burst): every burst booked on its own, exactly as
    /// b_transport would.
    void set_train_bytes(uint32_t bytes) { booker_.set_train_bytes(bytes); }
    /// Moves the bytes of DMI stretches on `helper` while the simulation goes on: a transfer
    /// hands its stretches over when it has booked them all, and its completion waits for
    /// them before it is delivered (helper_thread.h says why that is exact). Anything this
    /// mover reads or writes on the simulation thread (b_transport, transposes) first waits
    /// for what it handed over. nullptr (the default): every byte moves inline. Destroy the
    /// helper (which runs what is queued) before the memories its jobs write.
    void set_helper(HelperThread* helper) { copies_.set_helper(helper); }

protected:
    Mover(sc_core::sc_module_name name, const char* kind, const hw::Engine& engine, const hw::Config& config,
          const hw::AddressMap& map, const sc_core::sc_time& quantum);

private:
    struct Job {
        uint64_t id = 0;
        Fs start = 0, done = 0;
        uint64_t bytes = 0;
        bool started = false;
    };
    struct Due {
        Fs done;
        uint64_t seq;
        Completion completion;
        HelperThread::Ticket ticket = 0;  ///< the transfer's stretches on the helper; 0: none
    };
    /// Heap order of due_: earliest completion first, ties in submit order.
    static bool after(const Due& a, const Due& b) { return a.done != b.done ? a.done > b.done : a.seq > b.seq; }

    void enqueue(const hw::Transfer& transfer);
    void run();
    void deliver();
    void execute(const hw::Transfer& transfer);
    void finish(Job& job, TransferStatus status);
    /// Identity copy: stretches two DMI regions hold move at once and are booked as trains;
    /// anything else goes burst by burst through b_transport.
    bool copy_identity(const hw::Transfer& t, uint32_t burst, Job& job);
    /// Outer dimensions or zero fill: row by row (burst_walk.h's for_each_row), each valid row
    /// as an identity copy, each zero row written from zeros with no read.
    bool copy_gather(const hw::Transfer& t, uint32_t burst, Job& job);
    /// Transpose: bands of source rows read, then written out column by column (burst_walk.h).
    bool copy_transpose(const hw::Transfer& t, uint32_t burst, Job& job);
    uint32_t burst_of(uint64_t addr) const;

    /// The engine issues a burst of `bytes`; the job starts with its first.
    Fs issue(Job& job, uint32_t bytes) {
        const Fs at = booker_.issue(bytes);
        if (!job.started) job.start = at, job.started = true;
        return at;
    }
    /// The timed DMI region holding [addr, addr + bytes), or nullptr (then b_transport).
    const DmiRegion* region(uint64_t addr, uint32_t bytes);
    /// One read or write by b_transport, issued at `at`; `done` when it completes.
    bool access(Job& job, tlm::tlm_command command, uint64_t addr, uint8_t* data, uint32_t bytes, Fs at, Fs& done);
    /// One timed read or write: through DMI when it can, else b_transport.
    bool timed(Job& job, tlm::tlm_command command, uint64_t addr, uint8_t* data, uint32_t bytes, Fs at, Fs& done);
    /// Books the train gathered between `from` and `to`, then paces.
    void run_train(Job& job, const DmiRegion& from, const DmiRegion& to);
    /// After `bytes` were booked, done at `write_done`: syncs when the booker says so.
    void pace(Job& job, Fs write_done, uint64_t bytes) {
        job.done = std::max(job.done, write_done);
        if (booker_.pace(write_done, bytes)) sync();
    }
    /// Waits for the kernel: until the engine is free, or a delta while contended.
    void sync();

    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) {
        return tlm::TLM_ACCEPTED;  // b_transport only
    }
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) { dmi_.invalidate(start, end); }

    const char* kind_;
    const hw::Config& config_;
    const hw::AddressMap& map_;
    double bandwidth_;
    uint32_t queue_depth_;
    TimeBase time_;
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
    TrainBooker booker_;
    bool dmi_enabled_ = true;
    DmiCache dmi_;
    CopyHandOff copies_;
    std::vector<uint8_t> staging_, column_;
    std::vector<uint8_t> zeros_;  ///< a burst of the fill byte (hw::Transfer::fill): what a zero-filled row writes
    MoverStats stats_;
};

}  // namespace kpu::model
