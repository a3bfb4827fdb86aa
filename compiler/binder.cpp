#include "compiler/binder.h"

#include <algorithm>
#include <optional>
#include <sstream>

#include "compiler/compile_error.h"
#include "compiler/conv_gather.h"
#include "compiler/ffn_fusion.h"
#include "compiler/flash_attention.h"
#include "compiler/generate.h"
#include "compiler/hazard_tracker.h"
#include "compiler/keep_in_l3.h"
#include "compiler/large_load_limit.h"
#include "compiler/memory_plan.h"
#include "compiler/move_elision.h"
#include "compiler/ops/op_schema.h"
#include "compiler/reblock.h"

namespace kpu::compiler {

namespace {

/// The tracker's region of a compute tile's fabric accumulator set, after every hw::Level's
/// (a level's region is its hw::Level): one byte at 0 that a Matmul writes and a Drain reads.
constexpr uint32_t kAccumulatorRegion = uint32_t(hw::Level::L1) + 1;

/// How an engine reads or writes `tensor`'s elements: its dtype and, for int8, its per-tensor
/// quantization (a per-channel tensor's first channel: only the fabric's B is per channel,
/// and the fabric takes B's one zero point and the scale row instead).
hw::Encoding encoding_of(const Tensor& tensor) {
    hw::Encoding e;
    e.type = tensor.dtype;
    if (tensor.quant && !tensor.quant->scale.empty()) {
        e.scale = tensor.quant->scale[0];
        e.zero_point = tensor.quant->zero_point.at(0);
    }
    return e;
}

class Binder {
public:
    Binder(const Program& program, const hw::Config& config)
        : program_(program), config_(config), map_(config), large_loads_(config) {
        for (const Kernel& kernel : program.kernels) {
            const Op& op = program.graph.ops()[kernel.op];
            if (is_copy_op(program.graph, op)) {  // the movers' roles: the first input as A, the output as C
                MatmulOperands roles;
                roles.a = roles.b = op.inputs.at(0), roles.c = op.outputs.at(0);
                operands_.push_back(roles);
                vectors_.emplace_back();
                flash_.emplace_back();
                continue;
            }
            flash_.emplace_back();
            if (is_flash_op(op)) {  // the movers' roles: Q as A, K as B, Y as C, V as the bias
                const FlashOperands f = flash_operands(program.graph, kernel.op);
                MatmulOperands roles;
                roles.a = f.q, roles.b = f.k, roles.c = f.y, roles.bias = f.v;
                operands_.push_back(roles);
                vectors_.emplace_back();
                flash_.back() = f;
                continue;
            }
            if (is_ffn_op(op)) {  // the movers' roles: X and H as A, the weights as B, Y as C
                const FfnOperands f = ffn_operands(program.graph, kernel.op);
                MatmulOperands roles;
                roles.a = f.x, roles.b = f.w1, roles.c = f.y, roles.bias = f.b1 ? f.b1 : f.b2;
                operands_.push_back(roles);
                vectors_.emplace_back();
                continue;
            }
            if (!is_vector_op(program.graph.ops()[kernel.op])) {
                operands_.push_back(matmul_operands(program.graph, kernel.op));
                vectors_.emplace_back();
                continue;
            }
            // The movers' roles (engine_for_move): a as A, b or the weight as B, y as C.
            const VectorOperands v = vector_operands(program.graph, kernel.op);
            MatmulOperands roles;
            roles.a = v.a, roles.c = v.y;
            roles.b = v.b ? *v.b : v.weight ? *v.weight : v.y;
            roles.bias = v.bias;
            operands_.push_back(roles);
            vectors_.push_back(v);
        }
    }

    BoundProgram run() {
        bound_.config_name = config_.name;
        place_tensors();
        for (uint32_t k = 0; k < program_.kernels.size(); ++k) layouts_.push_back(place_buffers(program_, k, config_));
        tiles_ = task_tiles(program_, config_);
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
        const Graph& g = program_.graph;
        const std::vector<uint32_t> roots = alias_roots(g);
        // With plan-memory, where its plan puts them (dead tensors' space reused; memory_plan.h).
        std::optional<MemoryPlan> plan;
        if (std::find(program_.passes.begin(), program_.passes.end(), Pass::PlanMemory) != program_.passes.end())
            plan = program_memory_plan(program_, config_.dram.interleave_bytes);
        l3_ = program_l3_plan(program_);
        for (uint32_t i = 0; i < g.tensors().size(); ++i) {
            const Tensor& t = g.tensor(i);
            // A compile-time value (an axes list) is in the commands, not in DRAM.
            if (is_compile_time_value(g, i)) {
                slot_.push_back(kNoTensor);
                continue;
            }
            slot_.push_back(uint32_t(bound_.tensors.size()));
            BoundTensor b{t.name, t.shape, to_string(t.dtype), to_string(*t.role), next, t.bytes()};
            // A view's output is an alias: its root's address (placed in the second pass).
            if (roots[i] != i) {
                bound_.tensors.push_back(std::move(b));
                continue;
            }
            if (l3_.count && l3_.resident[i]) {  // keep-in-l3's: in L3, or above the DRAM plan (place_l3_tensors)
                bound_.tensors.push_back(std::move(b));
                continue;
            }
            if (plan) b.dram_addr = plan->offset[i];
            next = plan ? b.dram_addr + t.bytes() : next + round_up(t.bytes(), config_.dram.interleave_bytes);
            if (next > map_.dram_size()) {
                std::ostringstream msg;
                msg << "cannot bind to config '" << config_.name << "': tensor '" << t.name << "' (" << t.bytes()
                    << " bytes) ends at DRAM byte " << next << " but DRAM has " << map_.dram_size() << " bytes";
                throw CompileError(msg.str());
            }
            bound_.tensors.push_back(std::move(b));
        }
        if (l3_.count) place_l3_tensors(roots);
        for (uint32_t i = 0; i < g.tensors().size(); ++i)
            if (roots[i] != i) {
                BoundTensor& view = bound_.tensors[slot_[i]];
                const BoundTensor& root = bound_.tensors.at(slot_.at(roots[i]));
                view.dram_addr = root.dram_addr, view.in_l3 = root.in_l3;
            }
    }

    /// keep-in-l3's tensors in their tiles' L3 when this config has at least the L3 and the
    /// tiles the plan was made for; else (bound to a smaller config) each in DRAM above
    /// every other tensor, in a range of its own, and moved as any DRAM tensor.
    void place_l3_tensors(const std::vector<uint32_t>& roots) {
        const Graph& g = program_.graph;
        if (config_.l3.capacity_bytes >= program_.memory->l3_capacity && config_.compute_tiles >= l3_.tiles) {
            for (uint32_t i = 0; i < g.tensors().size(); ++i)
                if (roots[i] == i && l3_.resident[i]) {  // its band 0 (split_l3_transfer finds the others)
                    BoundTensor& b = bound_.tensors[slot_[i]];
                    b.dram_addr = map_.l3_base(l3_.first_tile[i]) + l3_.offset[i];
                    b.in_l3 = true;
                }
            return;
        }
        uint64_t top = 0;
        for (uint32_t i = 0; i < g.tensors().size(); ++i)
            if (roots[i] == i && slot_[i] != kNoTensor && !l3_.resident[i])
                top = std::max(top, bound_.tensors[slot_[i]].dram_addr + g.tensor(i).bytes());
        uint64_t next = round_up(top, config_.dram.interleave_bytes);
        for (uint32_t i = 0; i < g.tensors().size(); ++i) {
            if (roots[i] != i || !l3_.resident[i]) continue;
            BoundTensor& b = bound_.tensors[slot_[i]];
            b.dram_addr = next;
            next += round_up(b.bytes, config_.dram.interleave_bytes);
            if (b.dram_addr + b.bytes > map_.dram_size()) {
                std::ostringstream msg;
                msg << "cannot bind to config '" << config_.name << "': tensor '" << b.name << "' (" << b.bytes
                    << " bytes) ends at DRAM byte " << b.dram_addr + b.bytes << " but DRAM has " << map_.dram_size()
                    << " bytes";
                throw CompileError(msg.str());
            }
        }
        l3_.resident.assign(l3_.resident.size(), false);  // moved as DRAM tensors
        l3_.count = 0;
    }

    uint64_t level_base(hw::Level level, uint32_t tile) const {
        switch (level) {
            case hw::Level::L3: return map_.l3_base(tile);
            case hw::Level::L2: return map_.l2_base(tile, 0);
            default: return map_.l1_base(tile, 0);
        }
    }

    uint64_t address(const BufferRef& r) const {
        return level_base(level_of(r.buffer), tile_) + layout_->offset[int(r.buffer)][r.slot] + r.offset * elem(r);
    }

    uint64_t stride(const BufferRef& r) const { return uint64_t(layout_->pitch[int(r.buffer)]) * elem(r); }

    /// Bytes of one element of the buffer `r` is in (its tensor's dtype).
    uint64_t elem(const BufferRef& r) const { return layout_->elem_bytes[int(r.buffer)]; }

    /// The graph tensor's encoding (encoding_of).
    hw::Encoding encoding(uint32_t tensor) const { return encoding_of(program_.graph.tensor(tensor)); }

    /// The tracker's space for one level of the current compute tile (device addresses).
    uint64_t space(hw::Level level) const { return space_id(uint32_t(level), tile_); }

    /// Records an access of `rows` rows of `row_bytes` at `addr` with `pitch` on chip.
    void touch(hw::Level level, uint64_t addr, uint64_t rows, uint64_t row_bytes, uint64_t pitch, bool write,
               const BoundOp& op) {
        tracker_.access(space(level), addr, hull_end(addr, rows, row_bytes, pitch), write, op.dfx_op, dfx_deps_);
    }

    /// The same in L1, for `rows` x `cols` elements of the buffer `r` at `addr`, `ld` elements
    /// apart (in the element size of r's tensor).
    void touch_l1(const BufferRef& r, uint64_t addr, uint64_t rows, uint64_t cols, uint64_t ld, bool write,
                  const BoundOp& op) {
        const uint64_t e = elem(r);
        touch(hw::Level::L1, addr, rows, cols * e, ld * e, write, op);
    }

    void touch_accumulators(bool write, const BoundOp& op) {
        tracker_.access(space_id(kAccumulatorRegion, tile_), 0, 1, write, op.dfx_op, dfx_deps_);
    }

    // Dependencies are found per DFX op (the tracker records DFX ids: the slices of one LOAD or
    // STORE write disjoint bytes and share the op's deps) and then expanded to bound ops.
    void bind_op(const DfxOp& d) {
        if (d.id != bound_range_.size()) throw CompileError("binder: DFX op ids are not consecutive");
        const uint32_t first = uint32_t(bound_.ops.size());
        bound_range_.push_back({first, first});
        tile_ = tiles_[d.task];
        layout_ = &layouts_[program_.tasks[d.task].kernel];
        BoundOp op;
        op.id = uint32_t(bound_.ops.size());
        op.dfx_op = d.id;
        op.tile = tile_;
        dfx_deps_.assign(d.deps.begin(), d.deps.end());  // the tracker adds the hazards' ops
        switch (d.kind) {
            case DfxOpKind::Load:
            case DfxOpKind::Store:
            case DfxOpKind::Move:
                if (!bind_move(d, op)) return;
                break;
            case DfxOpKind::Matmul: bind_matmul(d, op); break;
            case DfxOpKind::Drain: bind_drain(d, op); break;
            case DfxOpKind::Vector: bind_vector(d, op); break;
        }
        op.deps = bound_deps(d.id);
        if (d.gather) return push_gather(d, std::move(op));
        if (op.engine != EngineKind::Dma) {
            push(std::move(op));
            bound_range_.back().second = first + 1;
            return;
        }
        push_dma_slices(d, std::move(op), first);
    }

    /// A LOAD, STORE or MOVE; false when the move is elided (its bytes are already in place).
    bool bind_move(const DfxOp& d, BoundOp& op) {
        op.kind = BoundOp::Kind::Move;
        hw::Transfer& x = op.move;
        x.id = op.id;
        x.rows = uint32_t(d.rows);
        const uint64_t element = dtype_bytes(program_.graph.tensor(d.tensor).dtype);
        x.row_bytes = uint32_t(d.cols * element);
        const BoundTensor& t = bound_.tensors.at(slot_.at(d.tensor));
        // A tensor of rank 2 or more is a matrix of its last dim's columns (a vector op's 2D view).
        const uint64_t tensor_cols = t.shape.size() >= 2 ? t.shape.back() : 0;
        const uint64_t tensor_pitch = tensor_cols ? tensor_cols * element : x.row_bytes;
        const uint64_t tensor_addr = t.dram_addr + (d.row * tensor_cols + d.col) * element;
        const hw::Level src = d.src_level(), dst = d.dst_level();
        x.src = src == hw::Level::Dram ? tensor_addr : address(d.src);
        x.src_stride = src == hw::Level::Dram ? tensor_pitch * d.row_step : stride(d.src);
        x.dst = dst == hw::Level::Dram ? tensor_addr : address(d.dst);
        x.dst_stride = dst == hw::Level::Dram ? tensor_pitch * d.row_step : stride(d.dst);
        if (d.transpose) {  // on chip to on chip: dst holds cols x rows, a row per source column
            x.transform = hw::Transform::Transpose;
            x.elem_bytes = uint32_t(element);
        }
        if (src != hw::Level::Dram && dst != hw::Level::Dram && !d.transpose && !d.gather) {
            if (const auto m = elision_.earlier_copy(d.id, x, tracker_, space(src), space(dst))) {
                bound_range_.back() = bound_range_[*m];  // who depends on it depends on M's ops
                ++bound_.elided_moves;
                bound_.elided_bytes += x.bytes();
                return false;
            }
        }
        l3_pieces_.clear();
        if (l3_.count && l3_.resident[d.tensor]) split_l3_transfer(d, x, tensor_cols * element);
        if (d.gather) {  // reads the task's input rows in L3 (all of them: a hull)
            const ConvGeometry& g = *operands_[program_.tasks[d.task].kernel].conv;
            touch(src, x.src, std::max<uint64_t>(1, d.halo_rows * g.w), g.cg * element, x.src_stride, false, op);
        } else if (src != hw::Level::Dram) {
            touch(src, x.src, x.rows, x.row_bytes, x.src_stride, false, op);
        }
        if (dst != hw::Level::Dram && d.transpose)
            touch(dst, x.dst, d.cols, d.rows * element, x.dst_stride, true, op);
        else if (dst != hw::Level::Dram)
            touch(dst, x.dst, x.rows, x.row_bytes, x.dst_stride, true, op);
        const EngineChoice engine = engine_for_move(src, dst, operands_[program_.tasks[d.task].kernel], d.tensor, config_);
        op.engine = engine.engine;
        op.unit = engine.unit;
        if (op.engine == EngineKind::Dma && !(l3_.count && l3_.resident[d.tensor]))
            (src == hw::Level::Dram ? bound_.dram_read_bytes : bound_.dram_write_bytes) += x.bytes();
        return true;
    }

    void bind_matmul(const DfxOp& d, BoundOp& op) {
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
        // The operands' type and zero points: A's dtype, A's and B's quantization (B's zero
        // points are all equal, per tensor or per channel).
        const MatmulOperands& mm = operands_[program_.tasks[d.task].kernel];
        m.type = mm.a_type;
        if (m.type == DType::Int8) {
            m.a_zero = encoding(mm.a).zero_point;
            m.b_zero = encoding(mm.b).zero_point;
        }
        touch_l1(d.a, m.a, m.m, m.k, m.lda, false, op);
        touch_l1(d.b, m.b, m.k, m.n, m.ldb, false, op);
        if (d.load_c) {
            m.load_c = true;
            m.c = address(d.c);
            m.ldc = layout_->pitch[int(d.c.buffer)];
            touch_l1(d.c, m.c, m.m, m.n, m.ldc, false, op);
        }
        touch_accumulators(true, op);
        bound_.macs += uint64_t(m.m) * m.n * m.k;
    }

    void bind_drain(const DfxOp& d, BoundOp& op) {
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
        c.alpha = d.alpha;
        c.beta = d.beta;
        // C's element type and zero point (a fused attention's scores are float32).
        if (!flash_[program_.tasks[d.task].kernel]) {
            const hw::Encoding out = encoding(operands_[program_.tasks[d.task].kernel].c);
            c.out_type = out.type;
            c.out_zero = out.type == DType::Int8 ? out.zero_point : 0;
        }
        touch_accumulators(false, op);
        if (c.has_bias) touch_l1(d.bias, c.bias, 1, c.n, c.n, false, op);
        bind_epilogue(d, op);
        touch_l1(d.c, c.c, c.m, c.n, c.ldc, true, op);
    }

    /// The drain epilogue's scale row and residual tile (absent: the command's defaults).
    void bind_epilogue(const DfxOp& d, BoundOp& op) {
        DrainCommand& c = op.drain;
        if (d.has_scale) {
            c.has_scale = true;
            c.scale = address(d.scale);
            touch_l1(d.scale, c.scale, 1, c.n, c.n, false, op);
        }
        if (d.has_residual) {
            c.has_residual = true;
            c.residual = address(d.residual);
            c.ldr = layout_->pitch[int(d.residual.buffer)];
            touch_l1(d.residual, c.residual, c.m, c.n, c.ldr, false, op);
        }
    }

    /// A fused attention's VECTOR op: the online softmax step (the scores in place, the mask),
    /// the accumulation into O, the final division; every one with the rows' statistics.
    void bind_flash_vector(const DfxOp& d, BoundOp& op, const FlashOperands& f) {
        hw::VectorCommand& c = op.vector;
        c = flash_vector_command(f, d);
        // A fused attention is float32 only (fuse-attention declines other types).
        const uint64_t e = dtype_bytes(DType::Float32), row = uint64_t(d.n) * e;
        c.a = {address(d.a), layout_->pitch[int(d.a.buffer)], hw::Broadcast::None, hw::Encoding{}};
        touch(hw::Level::L2, c.a.addr, c.rows, row, c.a.ld * e, false, op);
        if (c.has_b) {
            c.b = {address(d.b), layout_->pitch[int(d.b.buffer)], f.mask_broadcast, hw::Encoding{}};
            const bool tile = f.mask_broadcast == hw::Broadcast::None;
            const uint64_t b_row = f.mask_broadcast == hw::Broadcast::Scalar ? e : row;
            touch(hw::Level::L2, c.b.addr, tile ? c.rows : 1, b_row, c.b.ld * e, false, op);
        }
        c.state = address(d.bias);
        touch(hw::Level::L2, c.state, 1, 3 * uint64_t(c.rows) * e, 3 * uint64_t(c.rows) * e, true, op);
        c.y = {address(d.c), layout_->pitch[int(d.c.buffer)], hw::Broadcast::None, hw::Encoding{}};
        if (c.function == hw::VectorFunction::OnlineAccumulate)
            touch(hw::Level::L2, c.y.addr, c.rows, row, c.y.ld * e, false, op);
        touch(hw::Level::L2, c.y.addr, c.rows, row, c.y.ld * e, true, op);
    }

    void bind_vector(const DfxOp& d, BoundOp& op) {
        op.kind = BoundOp::Kind::Vector;
        op.engine = EngineKind::Vector;
        if (const auto& f = flash_[program_.tasks[d.task].kernel]) return bind_flash_vector(d, op, *f);
        const VectorOperands& kernel_v = *vectors_[program_.tasks[d.task].kernel];
        const VectorOperands& v = kernel_v.chain.empty() ? kernel_v : kernel_v.chain.at(d.step);  // a chain: its step's
        hw::VectorCommand& c = op.vector;
        c = v.command;
        c.rows = d.m;
        c.cols = d.n;
        if (v.period) c.causal_offset = int64_t(d.row % v.period);  // the piece's first query row
        // Each operand in its own element type (a vector_chain's steps are float32 only).
        const uint64_t ea = elem(d.a), row = uint64_t(d.n) * ea;
        // A window op's planes are contiguous in L2 (its buffers' pitch is a plane's width).
        c.a = {address(d.a), v.windowed() ? d.n : layout_->pitch[int(d.a.buffer)], hw::Broadcast::None,
               encoding(v.a)};
        if (v.windowed()) c.window.first_plane = d.row;
        touch(hw::Level::L2, c.a.addr, c.rows, row, c.a.ld * ea, false, op);
        if (c.has_b) {
            const uint64_t eb = elem(d.b);
            c.b = {address(d.b), layout_->pitch[int(d.b.buffer)], v.b_broadcast, v.b ? encoding(*v.b) : hw::Encoding{}};
            const uint64_t b_row = v.b_width() * eb;  // a column's ld is 1: its rows are contiguous
            if (v.b_per_row() && v.mask_rows(c.rows) > 1)
                touch(hw::Level::L2, c.b.addr, c.rows, b_row, c.b.ld * eb, false, op);
            else
                touch(hw::Level::L2, c.b.addr, 1, b_row, b_row, false, op);
        }
        if (c.has_weight) {
            c.weight = address(d.b);
            const uint64_t bytes = v.weight_elements() * elem(d.b);
            touch(hw::Level::L2, c.weight, 1, bytes, bytes, false, op);
        }
        if (c.has_bias) {
            c.bias = address(d.bias);
            const uint64_t bytes = v.bias_elements() * elem(d.bias);
            touch(hw::Level::L2, c.bias, 1, bytes, bytes, false, op);
        }
        const uint32_t y_ld = v.windowed() ? uint32_t(v.y_width()) : layout_->pitch[int(d.c.buffer)];
        const uint64_t ey = elem(d.c);
        c.y = {address(d.c), y_ld, hw::Broadcast::None, encoding(v.y)};
        touch(hw::Level::L2, c.y.addr, c.rows, v.y_width() * ey, c.y.ld * ey, true, op);
    }

    /// The current DFX op's dependencies (dfx_deps_) as bound ops: every op each was bound to.
    std::vector<uint32_t> bound_deps(uint32_t dfx_id) {
        normalize_deps(dfx_deps_, dfx_id);
        std::vector<uint32_t>& deps = bound_deps_;
        deps.clear();
        for (uint32_t dep : dfx_deps_)
            for (uint32_t b = bound_range_[dep].first; b < bound_range_[dep].second; ++b) deps.push_back(b);
        std::sort(deps.begin(), deps.end());  // an elided op's range is an earlier op's
        deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
        return {deps.begin(), deps.end()};
    }

    /// A LOAD or STORE of a keep-in-l3 tensor: `x` (its tensor side at the tensor's band 0, as
    /// if the tensor were one range) cut into one transfer per run of rows in one band
    /// (l3_pieces_), each at its band's tile, recorded in the tracker as an access to that
    /// tile's L3 (ordered against the kernels' buffers and other tensors sharing the range).
    void split_l3_transfer(const DfxOp& d, const hw::Transfer& x, uint64_t row_bytes) {
        const uint32_t t = d.tensor;
        const bool store = d.dst_level() == hw::Level::Dram;
        const uint64_t element = dtype_bytes(program_.graph.tensor(t).dtype), col_bytes = d.col * element;
        const uint64_t chip = store ? x.src : x.dst, chip_stride = store ? x.src_stride : x.dst_stride;
        const uint64_t band = l3_.band_rows[t];
        for (uint64_t i = 0; i < d.rows;) {
            const uint64_t row = d.row + i * d.row_step;
            const uint64_t end_row = (row / band + 1) * band;  // the band's end
            const uint64_t n = std::min<uint64_t>(d.rows - i, (end_row - row + d.row_step - 1) / d.row_step);
            const uint32_t tile = l3_.tile_of(t, row);
            const uint64_t at = map_.l3_base(tile) + l3_.row_offset(t, row, row_bytes) + col_bytes;
            hw::Transfer piece = x;
            piece.rows = uint32_t(n);
            (store ? piece.dst : piece.src) = at;
            (store ? piece.src : piece.dst) = chip + i * chip_stride;
            // Row by row: a hull would overlap the other column tiles' rows, and their STOREs
            // would wait for each other.
            const uint64_t pitch = store ? piece.dst_stride : piece.src_stride;
            const uint64_t space = space_id(uint32_t(hw::Level::L3), tile);
            if (pitch == x.row_bytes)
                tracker_.access(space, at, at + n * pitch, store, d.id, dfx_deps_);
            else
                for (uint64_t r = 0; r < n; ++r)
                    tracker_.access(space, at + r * pitch, at + r * pitch + x.row_bytes, store, d.id, dfx_deps_);
            l3_pieces_.push_back(piece);
            i += n;
        }
    }

    /// A LOAD or STORE runs as slices on several DMA engines (same bytes, interleaved units);
    /// a big LOAD also waits for its tile's previous one. A keep-in-l3 tensor's: its pieces.
    void push_dma_slices(const DfxOp& d, BoundOp op, uint32_t first) {
        const std::vector<hw::Transfer> slices =
            !l3_pieces_.empty() ? l3_pieces_ : split_dram_transfer(op.move, dma_slices(config_), config_.dram.interleave_bytes);
        if (d.kind == DfxOpKind::Load)
            large_loads_.order(tile_, op.move.bytes(), first, uint32_t(slices.size()), op.deps);
        for (size_t i = 0; i < slices.size(); ++i) {
            BoundOp slice = op;
            slice.move = slices[i];
            // A keep-in-l3 tensor's pieces on the tile's engines as its DRAM slices would be.
            const uint32_t n = l3_pieces_.empty() ? uint32_t(slices.size()) : dma_slices(config_);
            slice.unit = dma_engine(tile_, uint32_t(i % n), n, config_);
            push(std::move(slice));
        }
        bound_range_.back().second = uint32_t(bound_.ops.size());
    }

    /// A convolution's A tile: the gather's transfers (conv_gather.h), one bound op each on the
    /// DFX op's BlockMover, all with its dependencies.
    void push_gather(const DfxOp& d, BoundOp op) {
        const Task& task = program_.tasks[d.task];
        const MatmulOperands& mm = operands_[task.kernel];
        const uint64_t first_pixel = d.row - mm.a_row(task.batch);  // DfxOp::gather
        const std::vector<hw::Transfer> parts =
            conv_gather(*mm.conv, {d.halo_first, d.halo_rows}, first_pixel, d.rows, d.col, d.cols, address(d.src),
                        address(d.dst), stride(d.dst), uint32_t(elem(d.dst)));
        // The padding reads as the input's zero: an int8 input's zero point (its byte).
        const hw::Encoding in = encoding(mm.a);
        const uint8_t fill = in.type == DType::Int8 ? uint8_t(int8_t(in.zero_point)) : 0;
        for (const hw::Transfer& part : parts) {
            BoundOp piece = op;
            piece.move = part;
            piece.move.fill = fill;
            push(std::move(piece));
        }
        bound_range_.back().second = uint32_t(bound_.ops.size());
    }

    void push(BoundOp op) {
        op.id = op.move.id = uint32_t(bound_.ops.size());
        bound_.ops.push_back(std::move(op));
    }

    const Program& program_;
    const hw::Config& config_;
    hw::AddressMap map_;
    BoundProgram bound_;
    std::vector<BufferLayout> layouts_;  ///< per kernel
    std::vector<MatmulOperands> operands_;  ///< per kernel: its op's (a vector op's movers' roles)
    std::vector<uint32_t> slot_;  ///< per graph tensor: its index in bound_.tensors (kNoTensor: none)
    std::vector<std::optional<VectorOperands>> vectors_;  ///< per kernel: a vector op's operands
    std::vector<std::optional<FlashOperands>> flash_;     ///< per kernel: a fused attention's operands
    std::vector<uint32_t> tiles_;        ///< per task: its compute tile
    L3Plan l3_;                          ///< keep-in-l3's tensors (none resident when it did not run)
    std::vector<hw::Transfer> l3_pieces_;  ///< the current move's transfers when its tensor is in L3
    HazardTracker tracker_;
    MoveElision elision_;
    LargeLoadLimit large_loads_;
    /// The current op's dependencies as DFX ops, then as bound ops (kept for their capacity).
    std::vector<uint32_t> dfx_deps_, bound_deps_;
    const BufferLayout* layout_ = nullptr;  ///< the current op's kernel's
    uint32_t tile_ = 0;                     ///< the current op's compute tile
    /// Per DFX op: its bound ops [first, second) (an elided move's are the earlier move's).
    std::vector<std::pair<uint32_t, uint32_t>> bound_range_;
};

}  // namespace

BoundProgram bind(const Program& program, const hw::Config& config) {
    if (fits_config(program, config) && l3_plan_holds(program, config)) return Binder(program, config).run();
    const Program reblocked = reblock(program, config);  // the tiles made to fit (reblock.h)
    return Binder(reblocked, config).run();
}

uint64_t image_address(const BoundProgram& bound, const hw::Config& config, uint64_t image_bytes) {
    uint64_t top = 0;
    for (const BoundTensor& t : bound.tensors)
        if (!t.in_l3) top = std::max(top, t.dram_addr + t.bytes);
    const uint64_t at = round_up(top, config.dram.interleave_bytes);
    const uint64_t dram = hw::AddressMap(config).dram_size();
    if (at + image_bytes > dram)
        throw CompileError("tensors (" + std::to_string(top) + " bytes) and the program image (" +
                           std::to_string(image_bytes) + " bytes) do not fit the " + std::to_string(dram) +
                           " bytes of DRAM of " + config.name);
    return at;
}

}  // namespace kpu::compiler
