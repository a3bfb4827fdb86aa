#include "compiler/replay.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <queue>
#include <utility>
#include <vector>

#include "hardware/address_map.h"
#include "hardware/fabric_timing.h"
#include "hardware/vector_timing.h"

namespace kpu::compiler {
namespace {

/// A path's rate (bytes per fabric cycle) and first-byte latency (fabric cycles).
struct Path {
    double rate = 0, latency = 0;
};

class Replay {
public:
    Replay(const BoundProgram& program, const hw::Config& config)
        : program_(program), config_(config), map_(config) {
        const double hz = config.clocks.fabric_hz;
        const auto sram = [&](double cycles) { return cycles * hz / config.clocks.sram_hz; };
        const auto per_cycle = [&](double bytes_per_s) { return bytes_per_s / hz; };
        const double l3 = config.l3.bandwidth_bytes_per_s, l2 = config.l2.bandwidth_bytes_per_s,
                     l1 = config.l1.bandwidth_bytes_per_s;
        // A transfer runs at its engine's rate unless the memories at either end, shared with
        // every other transfer there, are slower.
        dma_ = {per_cycle(std::min(config.dma.bandwidth_bytes_per_s, config.interconnect.bandwidth_bytes_per_s)),
                config.dram.latency_cycles * hz / config.clocks.dram_hz +
                    sram(config.interconnect.latency_cycles + config.l3.latency_cycles)};
        block_mover_ = {per_cycle(config.block_mover.bandwidth_bytes_per_s),
                        sram(config.l3.latency_cycles + config.l2.latency_cycles)};
        streamer_ = {per_cycle(config.streamer.bandwidth_bytes_per_s),
                     sram(config.l2.latency_cycles + config.l1.latency_cycles)};
        dram_rate_ = per_cycle(hw::derive(config).dram_bandwidth);
        level_rate_[int(hw::Level::L3)] = per_cycle(l3 * config.l3.ports);
        level_rate_[int(hw::Level::L2)] = per_cycle(l2 * config.l2.ports);
        level_rate_[int(hw::Level::L1)] = per_cycle(l1 * config.l1.ports);
        memory_free_.assign(size_t(config.compute_tiles) * (1 + config.l2.count + config.l1.count), 0.0);
    }

    double run(double limit) {
        const auto& ops = program_.ops;
        const size_t n = ops.size();
        // Reverse edges, as a compressed list; each op's engine. The loop below reads only
        // these compact arrays (a BoundOp is hundreds of bytes: reading a dependent's from the
        // ops would miss the cache at every edge).
        std::vector<uint32_t> waiting(n), first(n + 1, 0), dependents, engine(n);
        for (const BoundOp& op : ops) {
            waiting[op.id] = uint32_t(op.deps.size());
            engine[op.id] = engine_of(op);
            for (uint32_t d : op.deps) ++first[d + 1];
        }
        for (size_t i = 0; i < n; ++i) first[i + 1] += first[i];
        dependents.resize(first[n]);
        std::vector<uint32_t> fill(first.begin(), first.end() - 1);
        for (const BoundOp& op : ops)
            for (uint32_t d : op.deps) dependents[fill[d]++] = op.id;

        engines_.assign(engine_count(), {});
        for (uint32_t id = 0; id < n; ++id)
            if (waiting[id] == 0) engines_[engine[id]].queue.push_back(id);
        for (uint32_t e = 0; e < engines_.size(); ++e) start_next(e, 0);

        double end = 0;
        while (!events_.empty()) {
            const Event ev = events_.top();
            events_.pop();
            if (ev.engine_free) {
                engines_[ev.index].busy = false;
                start_next(ev.index, ev.time);
                continue;
            }
            end = std::max(end, ev.time);
            if (end > limit) return end;
            for (uint32_t i = first[ev.index]; i < first[ev.index + 1]; ++i) {
                const uint32_t next = dependents[i];
                if (--waiting[next] > 0) continue;
                engines_[engine[next]].queue.push_back(next);
                start_next(engine[next], ev.time);
            }
        }
        return end;
    }

private:
    struct Engine {
        std::deque<uint32_t> queue;
        bool busy = false;
    };

    uint32_t engine_count() const {
        return config_.dma.count +
               config_.compute_tiles * (config_.block_mover.count + config_.streamer.count + 2);
    }

    uint32_t engine_of(const BoundOp& op) const {
        const uint32_t tiles = config_.compute_tiles;
        switch (op.engine) {
            case EngineKind::Dma: return op.unit;
            case EngineKind::BlockMover: return config_.dma.count + op.tile * config_.block_mover.count + op.unit;
            case EngineKind::Streamer:
                return config_.dma.count + tiles * config_.block_mover.count + op.tile * config_.streamer.count +
                       op.unit;
            case EngineKind::Fabric:
                return config_.dma.count + tiles * (config_.block_mover.count + config_.streamer.count) + op.tile;
            case EngineKind::Vector:
                return config_.dma.count + tiles * (config_.block_mover.count + config_.streamer.count + 1) + op.tile;
        }
        return 0;
    }

    /// Starts the engine's next queued op: the engine is taken for the op's occupancy, the op
    /// completes at its done time (a mover starts its next transfer while this one's last
    /// bytes are still on their way).
    void start_next(uint32_t e, double now) {
        Engine& engine = engines_[e];
        if (engine.busy || engine.queue.empty()) return;
        const uint32_t id = engine.queue.front();
        engine.queue.pop_front();
        engine.busy = true;
        const Timing t = timing(program_.ops[id], now);
        events_.push({now + t.occupancy, true, e});
        events_.push({now + t.done, false, id});
    }

    /// Books `bytes` on a shared resource of `rate` from `now` on; returns when they are through.
    static double book(double& free, double now, double bytes, double rate) {
        free = std::max(free, now) + bytes / rate;
        return free;
    }

    /// The memory instances [first, first + count) one side of a transfer touches (count 0:
    /// DRAM, which is booked as a whole).
    struct Span {
        hw::Location first;
        uint32_t count = 0;
    };
    Span span(uint64_t addr, uint64_t last) const {
        Span s;
        hw::Location end;
        if (!map_.decode(addr, 1, s.first) || s.first.level == hw::Level::Dram) return s;
        const bool in_one_tile = map_.decode(last, 1, end) && end.level == s.first.level &&
                                 end.tile == s.first.tile && end.index >= s.first.index;
        s.count = in_one_tile ? end.index - s.first.index + 1 : 1;  // the platform refuses the others
        return s;
    }

    /// Index of an on-chip memory instance in memory_free_.
    uint32_t instance(const hw::Location& where) const {
        const uint32_t tiles = config_.compute_tiles;
        switch (where.level) {
            case hw::Level::L3: return where.tile;
            case hw::Level::L2: return tiles + where.tile * config_.l2.count + where.index;
            default: return tiles * (1 + config_.l2.count) + where.tile * config_.l1.count + where.index;
        }
    }

    /// Books `bytes` spread evenly over the instances of `s` from `now` on; returns when they are through.
    double book_memory(const Span& s, double now, double bytes) {
        double done = now;
        if (s.count == 0) return done;
        double* free = &memory_free_[instance(s.first)];
        for (uint32_t i = 0; i < s.count; ++i)
            done = std::max(done, book(free[i], now, bytes / s.count, level_rate_[int(s.first.level)]));
        return done;
    }

    struct Timing {
        double occupancy = 0, done = 0;  ///< cycles from the start
    };

    Timing timing(const BoundOp& op, double now) {
        const uint32_t R = config_.fabric.rows, C = config_.fabric.cols;
        if (op.kind == BoundOp::Kind::Vector) {
            const double cycles = double(hw::vector_cycles(op.vector, config_.vector));
            return {cycles, cycles};
        }
        if (op.kind != BoundOp::Kind::Move) {
            // A PE does the element type's MACs per cycle (float32: always 1).
            const uint32_t macs = op.kind == BoundOp::Kind::Matmul && op.matmul.type != hw::DType::Float32
                                      ? config_.fabric_type(to_string(op.matmul.type)).ops_per_cycle
                                      : 1;
            const double cycles = double(op.kind == BoundOp::Kind::Matmul ? hw::matmul_cycles(op.matmul, R, C, macs)
                                                                          : hw::drain_cycles(op.drain, R, C));
            return {cycles, cycles};
        }
        const hw::Transfer& x = op.move;
        const double bytes = double(x.bytes());
        const uint64_t src_last = x.src + (x.rows - 1) * x.src_stride + x.row_bytes - 1;
        const uint64_t dst_last =
            x.transform == hw::Transform::Transpose
                ? x.dst + (x.row_bytes / x.elem_bytes - 1) * x.dst_stride + uint64_t(x.rows) * x.elem_bytes - 1
                : x.dst + (x.rows - 1) * x.dst_stride + x.row_bytes - 1;
        Span src = span(x.src, src_last), dst = span(x.dst, dst_last);
        double src_bytes = bytes;
        if (!x.plain()) {  // zero fill and outer dimensions: the rows read, the block written
            src_bytes = double(x.valid_rows() * x.row_bytes);
            src = span(x.src, x.src + std::max<uint64_t>(1, x.src_extent()) - 1);
            dst = span(x.dst, x.dst + x.dst_extent() - 1);
        }
        const Path& path = op.engine == EngineKind::Dma          ? dma_
                           : op.engine == EngineKind::BlockMover ? block_mover_
                                                                 : streamer_;
        const double engine = bytes / path.rate;
        double done = now + engine;
        if (op.engine == EngineKind::Dma) done = std::max(done, book(dram_free_, now, bytes, dram_rate_));
        if (src_bytes > 0) done = std::max(done, book_memory(src, now, src_bytes));
        done = std::max(done, book_memory(dst, now, bytes));
        return {engine, done - now + path.latency};
    }

    const BoundProgram& program_;
    const hw::Config& config_;
    hw::AddressMap map_;
    Path dma_, block_mover_, streamer_;
    double dram_rate_ = 0, dram_free_ = 0;
    double level_rate_[4] = {};
    std::vector<double> memory_free_;  ///< per L3 tile, then L2 bank, then L1 buffer: when its ports are free
    std::vector<Engine> engines_;
    struct Event {
        double time = 0;
        bool engine_free = false;  ///< else: op `index` completes
        uint32_t index = 0;        ///< engine or op
        bool operator>(const Event& o) const {
            return time != o.time ? time > o.time : engine_free != o.engine_free ? engine_free : index > o.index;
        }
    };
    std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
};

}  // namespace

double replay_cycles(const BoundProgram& program, const hw::Config& config, double limit) {
    return Replay(program, config).run(limit);
}

}  // namespace kpu::compiler
