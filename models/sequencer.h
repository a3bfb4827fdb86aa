// Sequencer: the KPU's program sequencer. It plays a bound program (compiler/bound_program.h)
// into the engines: each op goes to its engine as soon as every op it depends on has
// completed; nothing else orders them (no global barriers). It records per-op times and
// detects a program that can no longer progress. It charges no time itself.
// Sockets: none; it talks to engines through the Dispatch function the platform gives it and
// hears back through complete().
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <systemc>

#include "compiler/bound_program.h"

namespace kpu::model {

class Sequencer : public sc_core::sc_module {
public:
    /// Hands an op to its engine; false when that engine's queue is full (the op is retried
    /// when the same engine next reports a completion).
    using Dispatch = std::function<bool(const compiler::BoundOp&)>;

    struct OpRecord {
        sc_core::sc_time dispatched;  ///< when the engine got it
        sc_core::sc_time started;     ///< when the engine began it (after its queue)
        sc_core::sc_time completed;   ///< when the engine reported it done
        enum class State : uint8_t { Waiting, Dispatched, Done, Failed } state = State::Waiting;
    };

    Sequencer(sc_core::sc_module_name name, Dispatch dispatch);

    /// Starts playing `program` (which must outlive the run). Completion notifies finished().
    void start(const compiler::BoundProgram& program);

    /// Engines report here, at the simulated time the op finished; `started` is when the
    /// engine began it (the dispatch time when not given).
    void complete(uint32_t op_id, bool ok, const sc_core::sc_time* started = nullptr);

    bool running() const { return program_ != nullptr && !done_; }
    bool succeeded() const { return done_ && error_.empty(); }
    const std::string& error() const { return error_; }  ///< first failure, empty if none
    /// The program ended because ops were left that could never run: none in flight, none
    /// ready (error() starts "stuck: " and names them).
    bool stuck() const { return stuck_; }
    const sc_core::sc_event& finished() const { return finished_; }
    sc_core::sc_time started_at() const { return started_at_; }
    sc_core::sc_time finished_at() const { return finished_at_; }
    const std::vector<OpRecord>& records() const { return records_; }

    /// How far the running (or last) program got, for a display on another host thread (the
    /// one thing here that thread may call): ops completed and in all, and the simulated
    /// time from START to the latest completion.
    struct Progress {
        uint64_t completed = 0, total = 0;
        double simulated_s = 0;
    };
    Progress progress() const {
        return {progress_completed_.load(std::memory_order_relaxed), progress_total_.load(std::memory_order_relaxed),
                progress_simulated_s_.load(std::memory_order_relaxed)};
    }

    /// When the simulation ran out of events while ops remain: which ops are stuck and what
    /// each waits for (an op in an engine, or the deps it still misses). Empty when none.
    std::string stuck_report(size_t max_ops = 10) const;

private:
    using EngineKey = std::tuple<uint8_t, uint32_t, uint32_t>;  ///< (kind, tile, unit)
    static EngineKey key_of(const compiler::BoundOp& op);
    void make_ready(uint32_t id);
    void pump(const EngineKey& engine);
    void dispatched(uint32_t id);  ///< the engine took op `id`
    void finish(const std::string& error);
    /// Ends the program as stuck when nothing is in flight or ready and ops are left.
    void check_progress();

    Dispatch dispatch_;
    const compiler::BoundProgram* program_ = nullptr;
    std::vector<OpRecord> records_;
    std::vector<uint32_t> missing_deps_;                 ///< per op: deps not yet completed
    std::vector<uint32_t> dependents_;                   ///< ops that wait for others, grouped by the op waited for
    std::vector<uint32_t> first_dependent_;              ///< per op, and one past the last: its group in dependents_
    std::map<EngineKey, std::deque<uint32_t>> pending_;  ///< ready, refused by a full engine
    size_t completed_ = 0;
    size_t in_flight_ = 0;
    bool done_ = false;
    bool stuck_ = false;
    std::string error_;
    sc_core::sc_event finished_;
    sc_core::sc_time started_at_, finished_at_;
    std::atomic<uint64_t> progress_completed_{0}, progress_total_{0};  ///< see progress()
    std::atomic<double> progress_simulated_s_{0};
};

}  // namespace kpu::model
