#include "models/sequencer.h"

#include <sstream>

namespace kpu::model {

namespace {
std::string engine_text(const compiler::BoundOp& op) {
    if (op.engine == compiler::EngineKind::Dma) return "dma_" + std::to_string(op.unit);
    std::string text = "tile_" + std::to_string(op.tile) + "." + to_string(op.engine);
    const bool one_per_tile = op.engine == compiler::EngineKind::Fabric || op.engine == compiler::EngineKind::Vector;
    return one_per_tile ? text : text + "_" + std::to_string(op.unit);
}
}  // namespace

Sequencer::Sequencer(sc_core::sc_module_name name, Dispatch dispatch)
    : sc_core::sc_module(name), dispatch_(std::move(dispatch)) {}

Sequencer::EngineKey Sequencer::key_of(const compiler::BoundOp& op) {
    return {uint8_t(op.engine), op.engine == compiler::EngineKind::Dma ? 0 : op.tile, op.unit};
}

void Sequencer::start(const compiler::BoundProgram& program) {
    program_ = &program;
    const size_t n = program.ops.size();
    records_.assign(n, OpRecord{});
    missing_deps_.assign(n, 0);
    pending_.clear();
    completed_ = in_flight_ = 0;
    done_ = stuck_ = false;
    error_.clear();
    started_at_ = sc_core::sc_time_stamp();
    progress_completed_ = 0, progress_total_ = n, progress_simulated_s_ = 0;
    // Each op's dependents, flat: dependents_[first_dependent_[id], first_dependent_[id + 1]).
    first_dependent_.assign(n + 1, 0);
    for (const auto& op : program.ops) {
        missing_deps_[op.id] = uint32_t(op.deps.size());
        for (uint32_t dep : op.deps) ++first_dependent_[dep + 1];
    }
    for (size_t i = 0; i < n; ++i) first_dependent_[i + 1] += first_dependent_[i];
    dependents_.resize(first_dependent_[n]);
    std::vector<uint32_t> filled(first_dependent_.begin(), first_dependent_.end() - 1);
    for (const auto& op : program.ops)
        for (uint32_t dep : op.deps) dependents_[filled[dep]++] = op.id;
    if (n == 0) return finish("");
    for (const auto& op : program.ops)
        if (missing_deps_[op.id] == 0) make_ready(op.id);
    check_progress();
}

void Sequencer::check_progress() {
    // Nothing in flight, nothing ready, ops left: no completion can ever come. (An op that an
    // engine holds and never completes is not seen here; stuck_report() names it once the
    // simulation has run out of events.)
    if (done_ || !error_.empty() || in_flight_ > 0 || completed_ == program_->ops.size()) return;
    for (const auto& [engine, queue] : pending_)
        if (!queue.empty()) return;
    stuck_ = true;
    finish("stuck: " + stuck_report());
}

void Sequencer::make_ready(uint32_t id) {
    const EngineKey engine = key_of(program_->ops[id]);
    // No op waits for this engine (nearly always): offer it this one without making a queue.
    if (error_.empty() && pending_.find(engine) == pending_.end() && dispatch_(program_->ops[id]))
        return dispatched(id);
    pending_[engine].push_back(id);
    pump(engine);
}

void Sequencer::dispatched(uint32_t id) {
    records_[id].state = OpRecord::State::Dispatched;
    records_[id].dispatched = sc_core::sc_time_stamp();
    ++in_flight_;
}

void Sequencer::pump(const EngineKey& engine) {
    auto it = pending_.find(engine);
    if (it == pending_.end()) return;
    auto& queue = it->second;
    while (!queue.empty() && error_.empty()) {
        const uint32_t id = queue.front();
        if (!dispatch_(program_->ops[id])) break;  // engine full: retried on its next completion
        queue.pop_front();
        dispatched(id);
    }
    if (queue.empty()) pending_.erase(it);
}

void Sequencer::complete(uint32_t op_id, bool ok, const sc_core::sc_time* started) {
    if (!program_ || op_id >= records_.size() || records_[op_id].state != OpRecord::State::Dispatched) {
        SC_REPORT_ERROR("kpu/sequencer", (std::string(name()) + ": completion for op " + std::to_string(op_id) +
                                          " that is not in flight").c_str());
        return;
    }
    OpRecord& record = records_[op_id];
    record.completed = sc_core::sc_time_stamp();
    record.started = started ? *started : record.dispatched;
    record.state = ok ? OpRecord::State::Done : OpRecord::State::Failed;
    --in_flight_;
    ++completed_;
    progress_completed_.store(completed_, std::memory_order_relaxed);
    progress_simulated_s_.store((sc_core::sc_time_stamp() - started_at_).to_seconds(), std::memory_order_relaxed);
    const compiler::BoundOp& op = program_->ops[op_id];
    if (!ok && error_.empty()) {
        // Stop issuing; let what is in flight finish so the platform is quiet afterwards.
        error_ = "op " + std::to_string(op_id) + " on " + engine_text(op) + " failed";
        pending_.clear();
    }
    if (error_.empty()) {
        for (uint32_t i = first_dependent_[op_id]; i < first_dependent_[op_id + 1]; ++i)
            if (--missing_deps_[dependents_[i]] == 0) make_ready(dependents_[i]);
        pump(key_of(op));
    }
    if (completed_ == program_->ops.size() || (!error_.empty() && in_flight_ == 0))
        finish(error_);
    else
        check_progress();
}

void Sequencer::finish(const std::string& error) {
    done_ = true;
    error_ = error;
    finished_at_ = sc_core::sc_time_stamp();
    finished_.notify(sc_core::SC_ZERO_TIME);
}

std::string Sequencer::stuck_report(size_t max_ops) const {
    if (!program_ || done_) return "";
    std::ostringstream out;
    out << (program_->ops.size() - completed_) << " of " << program_->ops.size() << " ops did not complete";
    size_t shown = 0;
    for (const auto& op : program_->ops) {
        const OpRecord& record = records_[op.id];
        if (record.state == OpRecord::State::Done || record.state == OpRecord::State::Failed) continue;
        if (shown++ == max_ops) {
            out << "; ...";
            break;
        }
        out << "; op " << op.id << " on " << engine_text(op);
        if (record.state == OpRecord::State::Dispatched) {
            out << " was dispatched and never completed";
        } else {
            out << " waits for";
            for (uint32_t dep : op.deps)
                if (records_[dep].state != OpRecord::State::Done) out << " op " << dep;
            if (missing_deps_[op.id] == 0) out << " a free slot in its engine's queue";
        }
    }
    return out.str();
}

}  // namespace kpu::model
