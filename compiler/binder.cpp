#include "compiler/binder.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <unordered_map>

#include "compiler/compile_error.h"
#include "compiler/generate.h"
#include "compiler/hazard_tracker.h"
#include "compiler/tiler.h"

namespace kpu::compiler {

std::vector<uint32_t> task_tiles(const Program& program, const hw::Config& config) {
    // A kernel that reads the previous kernel's results starts where that one started (a
    // chain's layers wait for each other anyway); one that does not starts after the previous
    // kernel's tiles, so that independent ops run side by side.
    const size_t kernels = program.kernels.size();
    std::vector<uint32_t> count(kernels, 0), first(kernels, 0);
    std::vector<bool> follows(kernels, false);
    for (const Task& task : program.tasks) {
        ++count[task.kernel];
        for (uint32_t dep : task.deps)
            if (dep < program.tasks.size() && program.tasks[dep].kernel + 1 == task.kernel) follows[task.kernel] = true;
    }
    for (size_t k = 1; k < kernels; ++k)
        first[k] = uint32_t((uint64_t(first[k - 1]) + (follows[k] ? 0 : count[k - 1])) % config.compute_tiles);
    std::vector<uint32_t> tiles(program.tasks.size()), seen(kernels, 0);
    for (size_t t = 0; t < program.tasks.size(); ++t) {
        const uint32_t k = program.tasks[t].kernel;
        tiles[t] = uint32_t((uint64_t(first[k]) + seen[k]++) % config.compute_tiles);
    }
    return tiles;
}

namespace {

/// The tracker's region of a compute tile's fabric accumulator set, after every hw::Level's
/// (a level's region is its hw::Level): one byte at 0 that a Matmul writes and a Drain reads.
constexpr uint32_t kAccumulatorRegion = uint32_t(hw::Level::L1) + 1;

/// Where each slot of each logical buffer of one kernel sits, relative to its level's
/// per-tile base.
struct Layout {
    uint64_t offset[kBufferCount][kMaxSlots] = {};
    uint32_t pitch[kBufferCount] = {};
    uint32_t tensor[kBufferCount] = {};
};

/// L2 and L1: one bank (buffer) per slot when everything fits that way, so that A and B
/// traffic use separate ports; packed otherwise. L3 (one instance per tile): packed.
Layout place(const Program& program, uint32_t kernel, const hw::Config& config) {
    const auto plan = plan_buffers(program.graph, program.kernels[kernel], max_task_extent(program, kernel));
    const Op& op = program.graph.ops()[program.kernels[kernel].op];
    Layout layout;
    for (hw::Level level : {hw::Level::L3, hw::Level::L2, hw::Level::L1}) {
        const uint64_t need = level_bytes(plan, level), have = level_capacity(config, level);
        if (need > have) {
            const BufferSpec* biggest = nullptr;
            for (const BufferSpec& b : plan)
                if (b.level == level && (!biggest || b.slot_bytes * b.slots > biggest->slot_bytes * biggest->slots))
                    biggest = &b;
            std::ostringstream msg;
            msg << "cannot bind op '" << op.name << "' to config '" << config.name << "': tensor '"
                << program.graph.tensor(biggest->tensor).name << "' needs " << biggest->slots << " x "
                << biggest->slot_bytes << " bytes in " << to_string(biggest->buffer) << "; " << hw::to_string(level)
                << " needs " << need << " bytes per compute tile in total but has " << have;
            throw CompileError(msg.str());
        }
        const uint64_t instance = level == hw::Level::L2   ? config.l2.capacity_bytes
                                  : level == hw::Level::L1 ? config.l1.capacity_bytes
                                                           : have;
        uint64_t spread = 0;
        for (const BufferSpec& b : plan)
            if (b.level == level) spread += b.slots * round_up(b.slot_bytes, instance);
        const uint64_t granule = (level != hw::Level::L3 && spread <= have) ? instance : kAlign;
        uint64_t next = 0;
        for (uint32_t slot = 0; slot < kMaxSlots; ++slot)
            for (const BufferSpec& b : plan) {
                if (b.level != level || slot >= b.slots) continue;
                layout.offset[int(b.buffer)][slot] = next;
                layout.pitch[int(b.buffer)] = b.pitch;
                layout.tensor[int(b.buffer)] = b.tensor;
                next += round_up(b.slot_bytes, granule);
            }
    }
    return layout;
}

/// Which engine of a kind moves a tensor: A, B, results and bias on different units when the
/// tile has that many, so their transfers run in parallel.
uint32_t unit_for(const Op& op, uint32_t tensor, uint32_t count) {
    const uint32_t role = tensor == op.a ? 0 : tensor == op.b ? 1 : tensor == op.c ? 2 : 3;
    return role % count;
}

/// What one compute tile's link from the interconnect into its L3 carries, bytes/s.
double tile_link_bandwidth(const hw::Config& config) {
    return std::min(config.interconnect.bandwidth_bytes_per_s, config.l3.bandwidth_bytes_per_s * config.l3.ports);
}

}  // namespace

uint32_t dma_slices(const hw::Config& config) {
    const double n = std::floor(tile_link_bandwidth(config) / config.dma.bandwidth_bytes_per_s);
    return uint32_t(std::clamp(n, 1.0, double(config.dma.count)));
}

std::vector<hw::Transfer> split_dram_transfer(const hw::Transfer& x, uint32_t engines, uint64_t block) {
    // Units: interleave blocks when both sides are contiguous and whole blocks, rows otherwise.
    hw::Transfer unit = x;
    const uint64_t bytes = x.bytes();
    if (x.src_stride == x.row_bytes && x.dst_stride == x.row_bytes && block > 0 && bytes % block == 0 &&
        bytes / block > x.rows) {
        unit.rows = uint32_t(bytes / block);
        unit.row_bytes = uint32_t(block);
        unit.src_stride = unit.dst_stride = block;
    }
    const uint64_t n = std::min<uint64_t>({engines, unit.rows, block ? bytes / block : 1});
    if (n <= 1) return {x};
    std::vector<hw::Transfer> slices;
    for (uint64_t i = 0; i < n; ++i) {
        hw::Transfer s = unit;
        s.rows = uint32_t((unit.rows - i + n - 1) / n);  // units i, i + n, i + 2n, ...
        s.src = unit.src + i * unit.src_stride;
        s.dst = unit.dst + i * unit.dst_stride;
        s.src_stride = unit.src_stride * n;
        s.dst_stride = unit.dst_stride * n;
        slices.push_back(s);
    }
    return slices;
}

namespace {

class Binder {
public:
    Binder(const Program& program, const hw::Config& config) : program_(program), config_(config), map_(config) {}

    BoundProgram run() {
        bound_.config_name = config_.name;
        place_tensors();
        for (uint32_t k = 0; k < program_.kernels.size(); ++k) layouts_.push_back(place(program_, k, config_));
        tiles_ = task_tiles(program_, config_);
        last_big_load_.assign(config_.compute_tiles, {0, 0});
        load_window_ = uint64_t(tile_link_bandwidth(config_) * config_.dram.latency_cycles / config_.clocks.dram_hz);
        // Every DFX op binds to one op, a LOAD or STORE to one per DMA slice (fewer if elided).
        const OpCounts counts = count_ops(program_);
        bound_range_.reserve(counts.total);
        bound_.ops.reserve(counts.total + (counts.by_kind[int(DfxOpKind::Load)] + counts.by_kind[int(DfxOpKind::Store)]) *
                                              (dma_slices(config_) - 1));
        for_each_op(program_, [this](const DfxOp& op) { bind_op(op); });
        return std::move(bound_);
    }

private:
    void place_tensors() {
        uint64_t next = 0;
        for (const Tensor& t : program_.graph.tensors()) {
            BoundTensor b{t.name, t.shape, to_string(t.dtype), to_string(*t.role), next, t.bytes()};
            next += round_up(t.bytes(), config_.dram.interleave_bytes);
            if (next > map_.dram_size()) {
                std::ostringstream msg;
                msg << "cannot bind to config '" << config_.name << "': tensor '" << t.name << "' (" << t.bytes()
                    << " bytes) ends at DRAM byte " << next << " but DRAM has " << map_.dram_size() << " bytes";
                throw CompileError(msg.str());
            }
            bound_.tensors.push_back(std::move(b));
        }
    }

    uint64_t level_base(hw::Level level, uint32_t tile) const {
        switch (level) {
            case hw::Level::L3: return map_.l3_base(tile);
            case hw::Level::L2: return map_.l2_base(tile, 0);
            default: return map_.l1_base(tile, 0);
        }
    }

    uint64_t address(const BufferRef& r) const {
        return level_base(level_of(r.buffer), tile_) + layout_->offset[int(r.buffer)][r.slot] + r.offset * 4;
    }

    uint64_t stride(const BufferRef& r) const { return uint64_t(layout_->pitch[int(r.buffer)]) * 4; }

    /// Records an access of `rows` rows of `row_bytes` at `addr` with `stride` on chip.
    void touch(hw::Level level, uint64_t addr, uint64_t rows, uint64_t row_bytes, uint64_t pitch, bool write,
               BoundOp& op) {
        tracker_.access(space(level), addr, hull_end(addr, rows, row_bytes, pitch), write, op.dfx_op, dfx_deps_);
    }

    /// The tracker's space for one level of the current compute tile (device addresses).
    uint64_t space(hw::Level level) const { return space_id(uint32_t(level), tile_); }

    void touch_accumulators(bool write, BoundOp& op) {
        tracker_.access(space_id(kAccumulatorRegion, tile_), 0, 1, write, op.dfx_op, dfx_deps_);
    }

    // Dependencies are found per DFX op (the tracker records DFX ids: the slices of one LOAD or
    // STORE write disjoint bytes and share the op's deps) and then expanded to bound ops.
    void bind_op(const DfxOp& d) {
        if (d.id != bound_range_.size()) throw CompileError("binder: DFX op ids are not consecutive");
        const uint32_t first = uint32_t(bound_.ops.size());
        bound_range_.push_back({first, first});
        tile_ = tiles_[d.task];
        const Kernel& kernel = program_.kernels[program_.tasks[d.task].kernel];
        layout_ = &layouts_[program_.tasks[d.task].kernel];
        const Op& gop = program_.graph.ops()[kernel.op];
        BoundOp op;
        op.id = uint32_t(bound_.ops.size());
        op.dfx_op = d.id;
        op.tile = tile_;
        dfx_deps_.assign(d.deps.begin(), d.deps.end());  // the tracker adds the hazards' ops
        switch (d.kind) {
            case DfxOpKind::Load:
            case DfxOpKind::Store:
            case DfxOpKind::Move: {
                op.kind = BoundOp::Kind::Move;
                hw::Transfer& x = op.move;
                x.id = op.id;
                x.rows = uint32_t(d.rows);
                x.row_bytes = uint32_t(d.cols * 4);
                const BoundTensor& t = bound_.tensors[d.tensor];
                const uint64_t tensor_pitch = t.shape.size() == 2 ? t.shape[1] * 4 : x.row_bytes;
                const uint64_t tensor_addr = t.dram_addr + (d.row * (t.shape.size() == 2 ? t.shape[1] : 0) + d.col) * 4;
                const hw::Level src = d.src_level(), dst = d.dst_level();
                x.src = src == hw::Level::Dram ? tensor_addr : address(d.src);
                x.src_stride = src == hw::Level::Dram ? tensor_pitch : stride(d.src);
                x.dst = dst == hw::Level::Dram ? tensor_addr : address(d.dst);
                x.dst_stride = dst == hw::Level::Dram ? tensor_pitch : stride(d.dst);
                if (src != hw::Level::Dram && dst != hw::Level::Dram && elide(d.id, x, src, dst)) return;
                if (src != hw::Level::Dram) touch(src, x.src, x.rows, x.row_bytes, x.src_stride, false, op);
                if (dst != hw::Level::Dram) touch(dst, x.dst, x.rows, x.row_bytes, x.dst_stride, true, op);
                if (src == hw::Level::Dram || dst == hw::Level::Dram) {
                    op.engine = EngineKind::Dma;
                    (src == hw::Level::Dram ? bound_.dram_read_bytes : bound_.dram_write_bytes) += x.bytes();
                } else if (src == hw::Level::L1 || dst == hw::Level::L1) {
                    op.engine = EngineKind::Streamer;
                    op.unit = unit_for(gop, d.tensor, config_.streamer.count);
                } else {
                    op.engine = EngineKind::BlockMover;
                    op.unit = unit_for(gop, d.tensor, config_.block_mover.count);
                }
                break;
            }
            case DfxOpKind::Matmul: {
                op.kind = BoundOp::Kind::Matmul;
                op.engine = EngineKind::Fabric;
                MatmulCommand& m = op.matmul;
                m.a = address(d.a);
                m.b = address(d.b);
                m.lda = layout_->pitch[int(d.a.buffer)];
                m.ldb = layout_->pitch[int(d.b.buffer)];
                m.m = d.m;
                m.n = d.n;
                m.k = d.k;
                m.accumulate = d.accumulate;
                touch(hw::Level::L1, m.a, m.m, uint64_t(m.k) * 4, uint64_t(m.lda) * 4, false, op);
                touch(hw::Level::L1, m.b, m.k, uint64_t(m.n) * 4, uint64_t(m.ldb) * 4, false, op);
                if (d.load_c) {
                    m.load_c = true;
                    m.c = address(d.c);
                    m.ldc = layout_->pitch[int(d.c.buffer)];
                    touch(hw::Level::L1, m.c, m.m, uint64_t(m.n) * 4, uint64_t(m.ldc) * 4, false, op);
                }
                touch_accumulators(true, op);
                bound_.macs += uint64_t(m.m) * m.n * m.k;
                break;
            }
            case DfxOpKind::Drain: {
                op.kind = BoundOp::Kind::Drain;
                op.engine = EngineKind::Fabric;
                DrainCommand& c = op.drain;
                c.c = address(d.c);
                c.ldc = layout_->pitch[int(d.c.buffer)];
                c.m = d.m;
                c.n = d.n;
                c.has_bias = d.has_bias;
                c.bias = d.has_bias ? address(d.bias) : 0;
                c.activation = d.activation;
                touch_accumulators(false, op);
                if (c.has_bias) touch(hw::Level::L1, c.bias, 1, uint64_t(c.n) * 4, uint64_t(c.n) * 4, false, op);
                touch(hw::Level::L1, c.c, c.m, uint64_t(c.n) * 4, uint64_t(c.ldc) * 4, true, op);
                break;
            }
        }
        normalize_deps(dfx_deps_, d.id);
        std::vector<uint32_t>& deps = bound_deps_;
        deps.clear();
        for (uint32_t dep : dfx_deps_)
            for (uint32_t b = bound_range_[dep].first; b < bound_range_[dep].second; ++b) deps.push_back(b);
        std::sort(deps.begin(), deps.end());  // an elided op's range is an earlier op's
        deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
        op.deps.assign(deps.begin(), deps.end());
        if (op.engine != EngineKind::Dma) {
            push(std::move(op));
            bound_range_.back().second = first + 1;
            return;
        }
        // A LOAD or STORE runs as slices on several DMA engines (same bytes, interleaved units).
        const std::vector<hw::Transfer> slices =
            split_dram_transfer(op.move, dma_slices(config_), config_.dram.interleave_bytes);
        if (d.kind == DfxOpKind::Load && op.move.bytes() > load_window_) {
            // One big LOAD in flight per compute tile, in stream order: a LOAD of more than its
            // link moves in one DRAM latency waits for the tile's previous such LOAD, so the DMA
            // queues interleave the tiles instead of serving every tile's prefetches before the
            // next tile's first panel. Smaller LOADs (a bias, a narrow strip) take little of the
            // link and mostly wait for DRAM: they wait for no LOAD.
            for (uint32_t b = last_big_load_[tile_].first; b < last_big_load_[tile_].second; ++b) op.deps.push_back(b);
            last_big_load_[tile_] = {first, first + uint32_t(slices.size())};
        }
        // A compute tile's transfers always use the same engines (its DMA channels), so the
        // tiles share the engines evenly whatever the order of their LOADs in the stream.
        for (size_t i = 0; i < slices.size(); ++i) {
            BoundOp slice = op;
            slice.move = slices[i];
            slice.unit = uint32_t((uint64_t(tile_) * slices.size() + i) % config_.dma.count);
            push(std::move(slice));
        }
        bound_range_.back().second = uint32_t(bound_.ops.size());
    }

    /// An on-chip move that would copy bytes already in place: the same transfer as an earlier
    /// move M, with no byte of its source written since M and every byte of its destination
    /// last written by M. It is dropped, and whoever depends on it depends on M instead.
    /// (Double-buffered slots make this common: an A block lands in the same slot for every
    /// strip when the chunk parity repeats.) Otherwise it becomes the latest such move.
    bool elide(uint32_t dfx_id, const hw::Transfer& x, hw::Level src, hw::Level dst) {
        const MoveKey key{x.src, x.dst, x.rows, x.row_bytes, x.src_stride, x.dst_stride};
        const auto [it, fresh] = last_move_.try_emplace(key, dfx_id);
        if (fresh) return false;
        const uint32_t m = it->second;
        if (tracker_.written_after(space(src), x.src, hull_end(x.src, x.rows, x.row_bytes, x.src_stride), m) ||
            !tracker_.written_by(space(dst), x.dst, hull_end(x.dst, x.rows, x.row_bytes, x.dst_stride), m)) {
            it->second = dfx_id;
            return false;
        }
        bound_range_.back() = bound_range_[m];
        ++bound_.elided_moves;
        bound_.elided_bytes += x.bytes();
        return true;
    }

    void push(BoundOp op) {
        op.id = op.move.id = uint32_t(bound_.ops.size());
        bound_.ops.push_back(std::move(op));
    }

    const Program& program_;
    const hw::Config& config_;
    hw::AddressMap map_;
    BoundProgram bound_;
    std::vector<Layout> layouts_;
    std::vector<uint32_t> tiles_;
    HazardTracker tracker_;
    /// The current op's dependencies as DFX ops, then as bound ops (kept for their capacity).
    std::vector<uint32_t> dfx_deps_, bound_deps_;
    const Layout* layout_ = nullptr;
    uint32_t tile_ = 0;
    /// Per DFX op: its bound ops [first, second) (an elided move's are the earlier move's).
    std::vector<std::pair<uint32_t, uint32_t>> bound_range_;
    struct MoveKey {
        uint64_t src, dst;
        uint32_t rows, row_bytes;
        uint64_t src_stride, dst_stride;
        bool operator==(const MoveKey& o) const {
            return src == o.src && dst == o.dst && rows == o.rows && row_bytes == o.row_bytes &&
                   src_stride == o.src_stride && dst_stride == o.dst_stride;
        }
    };
    struct MoveKeyHash {
        size_t operator()(const MoveKey& k) const {
            uint64_t h = k.src * 0x9E3779B97F4A7C15ull ^ k.dst;
            h = h * 0x9E3779B97F4A7C15ull ^ (uint64_t(k.rows) << 32 | k.row_bytes);
            h = h * 0x9E3779B97F4A7C15ull ^ (k.src_stride << 24 ^ k.dst_stride);
            return size_t(h ^ h >> 29);
        }
    };
    std::unordered_map<MoveKey, uint32_t, MoveKeyHash> last_move_;  ///< on-chip moves: the latest DFX op of each
    std::vector<std::pair<uint32_t, uint32_t>> last_big_load_;  ///< per compute tile: its bound ops (slices)
    uint64_t load_window_ = 0;                           ///< bytes: tile link bandwidth x DRAM latency
};

}  // namespace

BoundProgram bind(const Program& program, const hw::Config& config) { return Binder(program, config).run(); }

uint64_t image_address(const BoundProgram& bound, const hw::Config& config, uint64_t image_bytes) {
    uint64_t top = 0;
    for (const BoundTensor& t : bound.tensors) top = std::max(top, t.dram_addr + t.bytes);
    const uint64_t at = round_up(top, config.dram.interleave_bytes);
    const uint64_t dram = hw::AddressMap(config).dram_size();
    if (at + image_bytes > dram)
        throw CompileError("tensors (" + std::to_string(top) + " bytes) and the program image (" +
                           std::to_string(image_bytes) + " bytes) do not fit the " + std::to_string(dram) +
                           " bytes of DRAM of " + config.name);
    return at;
}

}  // namespace kpu::compiler
