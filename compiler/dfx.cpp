#include "compiler/dfx.h"

#include <algorithm>
#include <optional>
#include <set>

#include "compiler/ffn_fusion.h"
#include "compiler/flash_attention.h"
#include "compiler/hazard_tracker.h"
#include "compiler/memory_plan.h"
#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {

void Hints::add(const Hints& o) {
    dram_read_bytes += o.dram_read_bytes;
    dram_write_bytes += o.dram_write_bytes;
    macs += o.macs;
    compute_cycles += o.compute_cycles;
    estimated_cycles += o.estimated_cycles;
    const uint64_t bytes = dram_read_bytes + dram_write_bytes;
    arithmetic_intensity = bytes ? 2.0 * double(macs) / double(bytes) : 0.0;
}

bool Hints::operator==(const Hints& o) const {
    return dram_read_bytes == o.dram_read_bytes && dram_write_bytes == o.dram_write_bytes && macs == o.macs &&
           compute_cycles == o.compute_cycles && estimated_cycles == o.estimated_cycles &&
           arithmetic_intensity == o.arithmetic_intensity;
}

hw::Level level_of(Buffer buffer) {
    switch (buffer) {
        case Buffer::Panel: case Buffer::Strip: case Buffer::Out: case Buffer::Bias3: case Buffer::Hidden:
        case Buffer::Scale3: case Buffer::Residual3:
            return hw::Level::L3;
        case Buffer::A2: case Buffer::B2: case Buffer::C2: case Buffer::Bias2: case Buffer::Scale2:
        case Buffer::Residual2:
            return hw::Level::L2;
        default: return hw::Level::L1;
    }
}

hw::Level DfxOp::src_level() const { return kind == DfxOpKind::Load ? hw::Level::Dram : level_of(src.buffer); }
hw::Level DfxOp::dst_level() const { return kind == DfxOpKind::Store ? hw::Level::Dram : level_of(dst.buffer); }

uint32_t tile_count(uint64_t extent, uint32_t tile) { return uint32_t((extent + tile - 1) / tile); }

Span1 tile_span(uint64_t extent, uint32_t tile, uint32_t index) {
    const uint64_t first = uint64_t(index) * tile;
    return {first, std::min<uint64_t>(tile, extent - first)};
}

std::vector<BufferSpec> plan_buffers(const Graph& graph, const Kernel& kernel, TaskExtent extent) {
    if (is_copy_op(graph, graph.ops()[kernel.op])) return plan_copy_buffers(graph, copy_operands(graph, kernel.op), kernel.tile);
    if (is_ffn_op(graph.ops()[kernel.op])) return plan_ffn_buffers(ffn_operands(graph, kernel.op), kernel.tile);
    if (is_flash_op(graph.ops()[kernel.op])) return plan_flash_buffers(flash_operands(graph, kernel.op), kernel.tile);
    if (is_vector_op(graph.ops()[kernel.op]))
        return plan_vector_buffers(graph, vector_operands(graph, kernel.op), std::min<uint64_t>(kernel.tile.tm, extent.rows));
    const MatmulOperands op = matmul_operands(graph, kernel.op);
    return plan_buffers(op, op.k, kernel.dataflow, kernel.tile, extent);
}

std::vector<BufferSpec> plan_buffers(const MatmulOperands& op, uint64_t k, Dataflow dataflow, TileShape tile, TaskExtent extent) {
    const uint64_t tm = tile.tm, tn = tile.tn, tk = tile.tk, kc = tile.pass_k(k);
    const bool os = dataflow == Dataflow::OutputStationary || op.conv;  // a convolution is output-stationary
    std::vector<BufferSpec> plan;
    auto add = [&](Buffer buffer, uint32_t slots, uint64_t rows, uint64_t pitch, uint32_t tensor, DType type) {
        const uint64_t e = dtype_bytes(type);
        plan.push_back({buffer, level_of(buffer), slots, rows * pitch * e, uint32_t(pitch), tensor, uint32_t(e)});
    };
    // With several K passes, `out` holds the whole task's C: partial sums wait there for the
    // next pass. It is laid out band by band (the task's rows of tn columns, one band after
    // the other, pitch tn), so every C tile is contiguous in L3 and the dependencies found
    // from byte ranges are exact; laid out as rows of the whole task, side-by-side tiles would
    // share a byte hull and each would wait for its neighbour's round trip. With one pass,
    // two strips' worth alternate.
    const bool passes = kc < k;
    // The L3 operands are kept as blocks of one fabric tile by one K chunk (tm x tk of A,
    // tk x tn of B), chunk by chunk: each block is contiguous, so it can be one LOAD that the
    // MATMUL_TILEs using it wait for, alone (see the Expander).
    // A transposed operand's blocks are kept as stored (tk x tm of A, tn x tk of B) and
    // transposed on their way to L2.
    const uint64_t ks = (kc + tk - 1) / tk;
    const uint64_t a_rows = op.trans_a ? tk : tm, a_pitch = op.trans_a ? tm : tk;
    const uint64_t b_rows = op.trans_b ? tn : tk, b_pitch = op.trans_b ? tk : tn;
    if (op.conv) {  // the panel is the input rows the task's pixels read (docs/compiler.md, "Convolution")
        add(Buffer::Panel, 1, op.conv->max_region_pixels(extent.rows), op.conv->cg, op.a, op.a_type);
        add(Buffer::Strip, 2, ks * b_rows, b_pitch, op.b, op.b_type);
    } else if (os) {
        const uint64_t tiles = (extent.rows + tm - 1) / tm;
        add(Buffer::Panel, 1, ks * tiles * a_rows, a_pitch, op.a, op.a_type);
        add(Buffer::Strip, 2, ks * b_rows, b_pitch, op.b, op.b_type);
    } else {
        const uint64_t tiles = (extent.cols + tn - 1) / tn;
        add(Buffer::Panel, 1, ks * tiles * b_rows, b_pitch, op.b, op.b_type);
        add(Buffer::Strip, 2, ks * a_rows, a_pitch, op.a, op.a_type);
    }
    if (passes)
        add(Buffer::Out, 1, (extent.cols + tn - 1) / tn * extent.rows, tn, op.c, op.c_type);
    else if (os)
        add(Buffer::Out, 2, extent.rows, tn, op.c, op.c_type);
    else
        add(Buffer::Out, 2, tm, extent.cols, op.c, op.c_type);
    add_fabric_slots(plan, tm, tn, tk, op.a, op.b, op.c,
                     {dtype_bytes(op.a_type), dtype_bytes(op.b_type), dtype_bytes(op.c_type)});
    if (op.bias)
        for (Buffer b : {Buffer::Bias3, Buffer::Bias2, Buffer::Bias1}) add(b, 1, 1, extent.cols, *op.bias, op.bias_type);
    // The drain epilogue's operands: the scale row like the bias; the residual one C tile at a
    // time beside it, double-buffered like C (docs/compiler.md, "Drain epilogue").
    if (op.scale)
        for (Buffer b : {Buffer::Scale3, Buffer::Scale2, Buffer::Scale1}) add(b, 1, 1, extent.cols, *op.scale, op.scale_type);
    if (op.residual)
        for (Buffer b : {Buffer::Residual3, Buffer::Residual2, Buffer::Residual1})
            add(b, 2, tm, tn, *op.residual, op.residual_type);
    return plan;
}

void add_fabric_slots(std::vector<BufferSpec>& plan, uint64_t tm, uint64_t tn, uint64_t tk, uint32_t a, uint32_t b,
                      uint32_t c, FabricElementBytes e) {
    for (hw::Level level : {hw::Level::L2, hw::Level::L1}) {
        const bool l2 = level == hw::Level::L2;
        plan.push_back({l2 ? Buffer::A2 : Buffer::A1, level, 2, tm * tk * e.a, uint32_t(tk), a, uint32_t(e.a)});
        plan.push_back({l2 ? Buffer::B2 : Buffer::B1, level, 2, tk * tn * e.b, uint32_t(tn), b, uint32_t(e.b)});
        plan.push_back({l2 ? Buffer::C2 : Buffer::C1, level, 2, tm * tn * e.c, uint32_t(tn), c, uint32_t(e.c)});
    }
}

namespace {

/// A vector_chain's buffers: a and y as a single vector op's, the intermediates in A2 and C2
/// by turns, every row input in one pair of row slots, every whole-task vector in one buffer.
std::vector<BufferSpec> plan_chain_buffers(const Graph& graph, const VectorOperands& v, uint64_t tm) {
    std::vector<BufferSpec> plan;
    auto add = [&](Buffer buffer, uint32_t slots, uint64_t rows, uint64_t pitch, uint32_t tensor) {
        const uint64_t e = element_bytes(graph, tensor);
        plan.push_back({buffer, level_of(buffer), slots, rows * pitch * e, uint32_t(pitch), tensor, uint32_t(e)});
    };
    const ChainLayout l = chain_layout(v);
    add(Buffer::Panel, 2, tm, v.cols, v.a);
    add(Buffer::A2, 2, tm, v.cols, v.a);
    add(Buffer::C2, 2, tm, v.cols, v.y);
    add(Buffer::Out, 2, tm, v.cols, v.y);
    if (!l.row_inputs.empty()) {
        add(Buffer::Strip, 2, l.row_inputs.size() * tm, v.cols, l.row_inputs[0]);
        add(Buffer::B2, 2, l.row_inputs.size() * tm, v.cols, l.row_inputs[0]);
    }
    if (!l.vectors.empty()) {
        add(Buffer::Bias3, 1, 1, l.vector_elements, l.vectors[0]);
        add(Buffer::Bias2, 1, 1, l.vector_elements, l.vectors[0]);
    }
    return plan;
}

}  // namespace

std::vector<BufferSpec> plan_vector_buffers(const Graph& graph, const VectorOperands& v, uint64_t tm) {
    std::vector<BufferSpec> plan;
    auto add = [&](Buffer buffer, uint32_t slots, uint64_t rows, uint64_t pitch, uint32_t tensor) {
        const uint64_t e = element_bytes(graph, tensor);
        plan.push_back({buffer, level_of(buffer), slots, rows * pitch * e, uint32_t(pitch), tensor, uint32_t(e)});
    };
    const uint64_t cols = v.cols;
    if (v.transpose) {  // tm input rows (whole matrices) in, their transposes in L2, out via L3
        const uint64_t out_rows = tm / v.matrix_rows * cols;
        add(Buffer::Panel, 2, tm, cols, v.a);
        add(Buffer::A2, 2, out_rows, v.matrix_rows, v.y);
        add(Buffer::Out, 2, out_rows, v.matrix_rows, v.y);
        return plan;
    }
    if (!v.chain.empty()) return plan_chain_buffers(graph, v, tm);
    // Row tiles alternate between two slots at each level: one is computed on while the
    // next comes in and the previous goes out. The engine reads and writes L2.
    // A window op's planes are its tensors' view rows: in_h (out_h) rows of in_w (out_w) each.
    add(Buffer::Panel, 2, tm * v.a_view_rows(), v.a_view_cols(), v.a);
    add(Buffer::A2, 2, tm * v.a_view_rows(), v.a_view_cols(), v.a);
    add(Buffer::Out, 2, tm * v.y_view_rows(), v.y_view_cols(), v.y);
    add(Buffer::C2, 2, tm * v.y_view_rows(), v.y_view_cols(), v.y);
    if (v.b_per_row()) {
        add(Buffer::Strip, 2, tm, v.b_width(), *v.b);
        add(Buffer::B2, 2, tm, v.b_width(), *v.b);
    } else if (v.b) {  // one copy per task
        add(Buffer::Bias3, 1, 1, v.b_width(), *v.b);
        add(Buffer::Bias2, 1, 1, v.b_width(), *v.b);
    }
    if (v.weight) {
        add(Buffer::Strip, 1, v.weight_rows, v.weight_cols, *v.weight);
        add(Buffer::B2, 1, v.weight_rows, v.weight_cols, *v.weight);
    }
    if (v.bias) {
        add(Buffer::Bias3, 1, 1, v.bias_cols, *v.bias);
        add(Buffer::Bias2, 1, 1, v.bias_cols, *v.bias);
    }
    return plan;
}

std::vector<BufferSpec> plan_copy_buffers(const Graph& graph, const CopyOperands& op, TileShape tile) {
    // Pieces alternate between two slots: one comes in while the other goes out. A copy moves
    // its source's elements unchanged (the destination has the same dtype).
    std::vector<BufferSpec> plan;
    const uint32_t src = op.copies.empty() ? 0 : op.copies[0].src, dst = op.copies.empty() ? 0 : op.copies[0].dst;
    const uint64_t e = op.copies.empty() ? dtype_bytes(DType::Float32) : element_bytes(graph, src);
    const uint64_t piece = uint64_t(tile.tn) * tile.tk * e;
    plan.push_back({Buffer::Panel, hw::Level::L3, 2, piece, tile.tk, src, uint32_t(e)});
    if (op.transposes) {  // transposed into L2 (tk rows of tn), back to L3 and out
        plan.push_back({Buffer::A2, hw::Level::L2, 2, piece, tile.tn, dst, uint32_t(e)});
        plan.push_back({Buffer::Out, hw::Level::L3, 2, piece, tile.tn, dst, uint32_t(e)});
    }
    return plan;
}

uint64_t level_bytes(const std::vector<BufferSpec>& plan, hw::Level level) {
    uint64_t total = 0;
    for (const BufferSpec& b : plan)
        if (b.level == level) total += b.slots * round_up(b.slot_bytes, kAlign);
    return total;
}

namespace {

struct Extent2 {
    uint64_t r0, r1, c0, c1;  // elements
};

Extent2 task_elements(const Program& program, const Task& task) {
    const Kernel& kernel = program.kernels[task.kernel];
    const KernelDims op = kernel_dims(program.graph, kernel.op);
    const uint64_t m = op.m, n = op.n;
    const uint64_t tm = kernel.tile.tm, tn = kernel.tile.tn;
    return {task.r0 * tm, std::min(m, task.r1 * tm), task.c0 * tn, std::min(n, task.c1 * tn)};
}

bool overlaps(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1) { return a0 < b1 && b0 < a1; }

/// Where elements [first, first + count) of `tensor`, contiguous in DRAM, lie in its 2D view
/// (the binder's: a tensor of rank 2 or more is rows of its last dim, a smaller one a row).
struct FlatRegion {
    uint64_t row, col;  ///< the first element's place
    Extent2 bounds;     ///< the rows and columns that hold them all
};
FlatRegion flat_region(const Tensor& tensor, uint64_t first, uint64_t count) {
    const uint64_t cols = tensor.shape.size() >= 2 ? tensor.shape.back() : std::max<uint64_t>(1, tensor.elements());
    const uint64_t row = first / cols, col = first % cols, last_row = (first + count - 1) / cols;
    if (row == last_row) return {row, col, {row, row + 1, col, col + count}};
    return {row, col, {row, last_row + 1, 0, cols}};
}

/// The region of its output a task writes, in the output's 2D view: a reduction's rows
/// [r0, r1) are its output's elements [r0, r1).
Extent2 task_writes(const Program& program, const Task& task) {
    const Extent2 e = task_elements(program, task);
    const uint32_t op = program.kernels[task.kernel].op;
    if (is_ffn_op(program.graph.ops()[op])) return e;  // Y's rows and columns
    if (is_flash_op(program.graph.ops()[op])) {
        const FlashRegion w = flash_task_writes(flash_operands(program.graph, op), program.kernels[task.kernel].tile, task);
        return {w.r0, w.r1, w.c0, w.c1};
    }
    if (!is_vector_op(program.graph.ops()[op])) {
        const uint64_t row = matmul_operands(program.graph, op).c_row(task.batch);
        return {row + e.r0, row + e.r1, e.c0, e.c1};
    }
    const VectorOperands v = vector_operands(program.graph, op);
    if (v.transpose) return {e.r0 / v.matrix_rows * v.cols, e.r1 / v.matrix_rows * v.cols, 0, v.matrix_rows};
    if (v.windowed()) return {e.r0 * v.y_view_rows(), e.r1 * v.y_view_rows(), 0, v.y_view_cols()};
    if (!v.reduces()) return e;
    return flat_region(program.graph.tensor(v.y), e.r0, e.r1 - e.r0).bounds;
}

}  // namespace

TaskExtent max_task_extent(const Program& program, uint32_t kernel) {
    TaskExtent extent;
    for (const Task& t : program.tasks) {
        if (t.kernel != kernel) continue;
        Extent2 e = task_elements(program, t);
        extent.rows = std::max(extent.rows, e.r1 - e.r0);
        extent.cols = std::max(extent.cols, e.c1 - e.c0);
    }
    return extent;
}

std::vector<TaskExtent> max_task_extents(const Program& program) {
    std::vector<TaskExtent> extents(program.kernels.size());
    for (const Task& t : program.tasks) {
        const Extent2 e = task_elements(program, t);
        TaskExtent& extent = extents[t.kernel];
        extent.rows = std::max(extent.rows, e.r1 - e.r0);
        extent.cols = std::max(extent.cols, e.c1 - e.c0);
    }
    return extents;
}

void task_traffic(const Program& program, const Task& task, uint64_t& read, uint64_t& write) {
    const Kernel& kernel = program.kernels[task.kernel];
    if (is_copy_op(program.graph, program.graph.ops()[kernel.op])) {  // each element read once, written once
        uint64_t bytes = 0;
        const TileShape& t = kernel.tile;
        for_each_piece(copy_operands(program.graph, kernel.op).copies, t.tm, t.tn, t.tk, task.r0, task.r1, task.c0,
                       task.c1, [&](const CopyPiece& p) {
                           bytes += p.copy.rows * p.copy.cols * element_bytes(program.graph, p.copy.src);
                       });
        read = write = bytes;
        return;
    }
    if (is_ffn_op(program.graph.ops()[kernel.op]))
        return ffn_task_traffic(ffn_operands(program.graph, kernel.op), kernel.tile, task, read, write);
    if (is_flash_op(program.graph.ops()[kernel.op]))
        return flash_task_traffic(flash_operands(program.graph, kernel.op), kernel.tile, task, read, write);
    const Extent2 e = task_elements(program, task);
    const Graph& g = program.graph;
    if (is_vector_op(g.ops()[kernel.op])) {
        const VectorOperands v = vector_operands(g, kernel.op);
        const uint64_t rows = e.r1 - e.r0, cols = v.cols;
        // Each operand's elements in its own type's bytes.
        const auto bytes = [&](std::optional<uint32_t> t, uint64_t elements) {
            return t ? element_bytes(g, *t) * elements : 0;
        };
        if (!v.chain.empty()) {  // a and each row input per row, each vector once, y once (float32 only)
            const ChainLayout l = chain_layout(v);
            const uint64_t f32 = dtype_bytes(DType::Float32);
            read = f32 * (rows * cols * (1 + l.row_inputs.size()) + l.vector_elements);
            write = f32 * rows * cols;
            return;
        }
        read = bytes(v.a, rows * cols) + bytes(v.b, b_elements(v, kernel.tile.tm, e.r0, e.r1)) +
               bytes(v.weight, v.weight_elements()) + bytes(v.bias, v.bias_elements());
        write = bytes(v.y, rows * v.y_width());
        return;
    }
    const MatmulOperands op = matmul_operands(g, kernel.op);
    const uint64_t rows = e.r1 - e.r0, cols = e.c1 - e.c0, k = op.k;
    // A convolution reads its input rows (the halo included) instead of A's rows.
    const uint64_t a = op.conv ? op.conv->region(e.r0, e.r1).count * op.conv->w * op.conv->cg : rows * k;
    read = dtype_bytes(op.a_type) * a + dtype_bytes(op.b_type) * k * cols +
           (op.bias ? dtype_bytes(op.bias_type) * cols : 0) + (op.scale ? dtype_bytes(op.scale_type) * cols : 0) +
           (op.residual ? dtype_bytes(op.residual_type) * rows * cols : 0);
    write = dtype_bytes(op.c_type) * rows * cols;
}

namespace {

/// A region of a tensor a task reads, in elements of its 2D view (rows, then columns).
struct Read {
    uint32_t tensor;
    uint64_t r0, r1, c0, c1;
};

/// The regions of its tensors a copy op's task reads (`reads`) or writes: per tensor, the
/// hull of its pieces' blocks.
std::vector<Read> copy_regions(const Program& program, const Task& task, const CopyOperands& op, bool reads) {
    std::vector<Read> out;
    const TileShape& t = program.kernels[task.kernel].tile;
    for_each_piece(op.copies, t.tm, t.tn, t.tk, task.r0, task.r1, task.c0, task.c1, [&](const CopyPiece& p) {
        const Copy& c = p.copy;
        const bool across = !reads && c.transpose;  // the destination holds cols rows of `rows`
        const uint64_t rows = across ? c.cols : c.rows, cols = across ? c.rows : c.cols;
        const Read r = reads ? Read{c.src, c.src_row, c.src_row + row_span(rows, c.src_step), c.src_col, c.src_col + cols}
                             : Read{c.dst, c.dst_row, c.dst_row + row_span(rows, c.dst_step), c.dst_col, c.dst_col + cols};
        for (Read& h : out)
            if (h.tensor == r.tensor) {
                h = {h.tensor, std::min(h.r0, r.r0), std::max(h.r1, r.r1), std::min(h.c0, r.c0), std::max(h.c1, r.c1)};
                return;
            }
        out.push_back(r);
    });
    return out;
}

std::vector<Read> task_reads(const Program& program, const Task& task) {
    const uint32_t op = program.kernels[task.kernel].op;
    if (is_copy_op(program.graph, program.graph.ops()[op]))
        return copy_regions(program, task, copy_operands(program.graph, op), true);
    if (is_ffn_op(program.graph.ops()[op])) {
        std::vector<Read> reads;
        for (const FfnRead& r : ffn_task_reads(ffn_operands(program.graph, op), program.kernels[task.kernel].tile, task))
            reads.push_back({r.tensor, r.r0, r.r1, r.c0, r.c1});
        return reads;
    }
    if (is_flash_op(program.graph.ops()[op])) {
        std::vector<Read> reads;
        for (const FlashRegion& r : flash_task_reads(flash_operands(program.graph, op), program.kernels[task.kernel].tile, task))
            reads.push_back({r.tensor, r.r0, r.r1, r.c0, r.c1});
        return reads;
    }
    const Extent2 e = task_elements(program, task);
    constexpr uint64_t kAll = ~uint64_t(0);
    if (is_vector_op(program.graph.ops()[op])) {
        const VectorOperands v = vector_operands(program.graph, op);
        std::vector<Read> reads{{v.a, e.r0 * v.a_view_rows(), e.r1 * v.a_view_rows(), 0, kAll}};
        if (!v.chain.empty()) {
            const ChainLayout l = chain_layout(v);
            for (uint32_t t : l.row_inputs) reads.push_back({t, e.r0, e.r1, 0, kAll});
            for (uint32_t t : l.vectors) reads.push_back({t, 0, kAll, 0, kAll});
            return reads;
        }
        const bool rows = v.b_per_row() && !v.period;  // a cut softmax's mask rows: mask_row()
        if (v.b) reads.push_back({*v.b, rows ? e.r0 : 0, rows ? e.r1 : kAll, 0, kAll});
        for (const auto& vec : {v.weight, v.bias})
            if (vec) reads.push_back({*vec, 0, kAll, 0, kAll});
        return reads;
    }
    // A is read as rows [r0, r1) x all K of its matrix; B as all K x columns [c0, c1) (a
    // transposed operand the other way round).
    const MatmulOperands mm = matmul_operands(program.graph, op);
    const uint64_t a = mm.a_row(task.batch), b = mm.b_row(task.batch);
    Read read_a = mm.trans_a ? Read{mm.a, a, a + mm.k, e.r0, e.r1} : Read{mm.a, a + e.r0, a + e.r1, 0, kAll};
    if (mm.conv) {  // the input rows of the task's pixels
        const ConvGeometry::Rows r = mm.conv->region(e.r0, e.r1);
        read_a = {mm.a, a + r.first * mm.conv->w, a + (r.first + r.count) * mm.conv->w, 0, kAll};
    }
    const Read read_b = mm.trans_b ? Read{mm.b, b + e.c0, b + e.c1, 0, kAll} : Read{mm.b, b, b + mm.k, e.c0, e.c1};
    std::vector<Read> reads{read_a, read_b};
    if (mm.bias) reads.push_back({*mm.bias, 0, kAll, 0, kAll});
    if (mm.scale) reads.push_back({*mm.scale, 0, kAll, 0, kAll});
    if (mm.residual) {
        const uint64_t c = mm.c_row(task.batch);
        reads.push_back({*mm.residual, c + e.r0, c + e.r1, e.c0, e.c1});
    }
    return reads;
}

}  // namespace

std::vector<uint32_t> producer_tasks(const Program& program, uint32_t index) {
    ProducerIndex producers(program);
    for (uint32_t u = 0; u < index; ++u) producers.add(u);
    return producers.producers(index);
}

ProducerIndex::ProducerIndex(const Program& program) : program_(program), roots_(alias_roots(program.graph)) {}

namespace {

/// The grid cell (row, col) as one key; two cells may share a key (then one cell's writes are
/// candidates for the other's reads, each checked exactly).
uint64_t cell_key(uint64_t row, uint64_t col) { return row * 0x9E3779B97F4A7C15ull ^ col; }

/// Cells [first, last] of a grid of `size` along one axis of [begin, end) (nonempty).
std::pair<uint64_t, uint64_t> cell_span(uint64_t begin, uint64_t end, uint64_t size) {
    return {begin / size, (end - 1) / size};
}

}  // namespace

void ProducerIndex::add(uint32_t task) {
    const Task& t = program_.tasks[task];
    const uint32_t op = program_.kernels[t.kernel].op;
    while (copies_.size() <= t.kernel) {
        const uint32_t k_op = program_.kernels[copies_.size()].op;
        copies_.push_back(is_copy_op(program_.graph, program_.graph.ops()[k_op])
                              ? std::optional<CopyOperands>(copy_operands(program_.graph, k_op))
                              : std::nullopt);
    }
    std::vector<Read> writes;
    if (copies_[t.kernel]) {
        writes = copy_regions(program_, t, *copies_[t.kernel], false);
    } else {
        const Extent2 w = task_writes(program_, t);
        writes.push_back({program_.graph.ops()[op].outputs.at(0), w.r0, w.r1, w.c0, w.c1});
    }
    for (const Read& w : writes) {
        const uint32_t id = uint32_t(regions_.size());
        regions_.push_back({task, w.r0, w.r1, w.c0, w.c1});
        Writes& tw = by_tensor_[w.tensor];
        tw.regions.push_back(id);
        if (w.r0 >= w.r1 || w.c0 >= w.c1) continue;  // overlaps nothing
        if (!tw.bucket_rows) tw.bucket_rows = w.r1 - w.r0, tw.bucket_cols = w.c1 - w.c0;
        tw.end_row = std::max(tw.end_row, w.r1);
        tw.end_col = std::max(tw.end_col, w.c1);
        const auto [row0, row1] = cell_span(w.r0, w.r1, tw.bucket_rows);
        const auto [col0, col1] = cell_span(w.c0, w.c1, tw.bucket_cols);
        if (row1 - row0 >= kMaxCells || col1 - col0 >= kMaxCells || (row1 - row0 + 1) * (col1 - col0 + 1) > kMaxCells) {
            tw.wide.push_back(id);
            continue;
        }
        for (uint64_t r = row0; r <= row1; ++r)
            for (uint64_t c = col0; c <= col1; ++c) tw.cells[cell_key(r, c)].push_back(id);
    }
}

const ProducerIndex::Writes* ProducerIndex::writes_of(uint32_t tensor) const {
    const auto it = by_tensor_.find(tensor);
    return it == by_tensor_.end() ? nullptr : &it->second;
}

void ProducerIndex::overlapping(const Writes& w, uint64_t r0, uint64_t r1, uint64_t c0, uint64_t c1,
                                std::vector<uint32_t>& out) const {
    // Every write lies within [0, end_row) x [0, end_col): clipping the read keeps its overlaps.
    r1 = std::min(r1, w.end_row), c1 = std::min(c1, w.end_col);
    if (r0 >= r1 || c0 >= c1) return;
    auto check = [&](uint32_t id) {
        const Region& g = regions_[id];
        if (overlaps(r0, r1, g.r0, g.r1) && overlaps(c0, c1, g.c0, g.c1)) out.push_back(g.task);
    };
    for (uint32_t id : w.wide) check(id);
    const auto [row0, row1] = cell_span(r0, r1, w.bucket_rows);
    const auto [col0, col1] = cell_span(c0, c1, w.bucket_cols);
    // A read over more cells than the tensor has writes looks at each write once instead.
    const double cells = double(row1 - row0 + 1) * double(col1 - col0 + 1);
    if (cells > double(w.regions.size())) {
        for (uint32_t id : w.regions) check(id);  // a wide one twice: the caller removes duplicates
        return;
    }
    for (uint64_t r = row0; r <= row1; ++r)
        for (uint64_t c = col0; c <= col1; ++c)
            if (const auto it = w.cells.find(cell_key(r, c)); it != w.cells.end())
                for (uint32_t id : it->second) check(id);
}

std::vector<uint32_t> ProducerIndex::producers(uint32_t task) const {
    std::vector<uint32_t> out;
    for (const Read& r : task_reads(program_, program_.tasks[task])) {
        // A read of a view's output reads its aliased tensor's bytes: in another 2D shape, so
        // every task writing that tensor is a producer.
        const uint32_t root = roots_[r.tensor];
        if (root != r.tensor)
            if (const Writes* w = writes_of(root))
                for (uint32_t id : w->regions) out.push_back(regions_[id].task);
        if (const Writes* w = writes_of(r.tensor)) overlapping(*w, r.r0, r.r1, r.c0, r.c1, out);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

namespace {

/// The drain epilogue's scale row and residual tile, when the kernel has them.
struct Epilogue {
    bool has_scale = false, has_residual = false;
    BufferRef scale, residual;
};

/// Emits the ops of one program, task by task.
class Expander {
public:
    Expander(const Program& program, const std::function<void(const DfxOp&)>& visit)
        : program_(program), visit_(visit), stores_(program.tasks.size()) {
        for (uint32_t k = 0; k < program.kernels.size(); ++k) {
            const uint32_t op = program.kernels[k].op;
            copies_.emplace_back();
            if (is_copy_op(program.graph, program.graph.ops()[op])) copies_.back() = copy_operands(program.graph, op);
            flash_.emplace_back();
            if (is_flash_op(program.graph.ops()[op])) flash_.back() = flash_operands(program.graph, op);
            extents_.push_back(max_task_extent(program, k));
            plans_.push_back(plan_buffers(program.graph, program.kernels[k], extents_.back()));
        }
        for (const Task& t : program.tasks) needed_.insert(t.deps.begin(), t.deps.end());
        roots_ = alias_roots(program.graph);
        if (program.memory) {
            MemoryPlan plan = program_memory_plan(program, program.memory->granule);
            if (plan.reuse) {
                memory_plan_ = std::move(plan);
                accesses_.resize(program.tasks.size());
            }
        }
    }

    void run() {
        for (uint32_t t = 0; t < program_.tasks.size(); ++t) expand(t);
    }

private:
    struct StoreRecord {
        uint32_t op, tensor;
        uint64_t r0, r1, c0, c1;
    };

    /// These ops for a kernel with a generator of its own (ffn_fusion.h).
    class Emitter final : public OpEmitter {
    public:
        explicit Emitter(Expander& x) : x_(x) {}
        void load(uint32_t t, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef dst) override {
            x_.load(t, row, col, rows, cols, dst);
        }
        void move(uint32_t t, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef src,
                  BufferRef dst) override {
            x_.move(t, row, col, rows, cols, src, dst);
        }
        void store(uint32_t t, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef src) override {
            x_.store(t, row, col, rows, cols, src);
        }
        void matmul(BufferRef a, BufferRef b, Span1 i, Span1 j, Span1 q, bool accumulate) override {
            x_.matmul(a, b, i, j, q, accumulate, nullptr);
        }
        void drain(BufferRef c, bool has_bias, BufferRef bias, Span1 i, Span1 j, Activation activation) override {
            x_.drain(c, has_bias, bias, i, j, activation, 1.0f, 1.0f);
        }

    private:
        Expander& x_;
    };

    uint32_t pitch(Buffer b) const {
        for (const BufferSpec& s : *plan_)
            if (s.buffer == b) return s.pitch;
        return 0;
    }

    /// The tracker's spaces: each slot of each logical buffer (offsets in elements), and the
    /// fabric's accumulator set, which no buffer holds: one element at 0 that a MATMUL_TILE
    /// writes and a DRAIN reads, in a region after the buffers'.
    static uint64_t space(const BufferRef& r) { return space_id(uint32_t(r.buffer), r.slot); }
    static constexpr uint64_t kAccumulators = space_id(kBufferCount, 0);

    void touch(const BufferRef& r, uint64_t rows, uint64_t cols, bool write) {
        tracker_.access(space(r), r.offset, hull_end(r.offset, rows, cols, pitch(r.buffer)), write, op_.id, op_.deps);
    }

    void begin(DfxOpKind kind) {
        op_ = DfxOp();
        op_.id = next_id_++;
        op_.kind = kind;
        op_.task = task_;
    }

    void finish() {
        normalize_deps(op_.deps, op_.id);
        visit_(op_);
    }

    void region(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols) {
        op_.tensor = tensor;
        op_.elem_bytes = uint32_t(element_bytes(program_.graph, tensor));
        op_.row = row;
        op_.col = col;
        op_.rows = rows;
        op_.cols = cols;
    }

    /// `step`: the region's rows are that many view rows apart.
    void load(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef dst, uint64_t step = 1) {
        begin(DfxOpKind::Load);
        region(tensor, row, col, rows, cols);
        op_.row_step = step;
        op_.dst = dst;
        const uint64_t span = row_span(rows, step);
        for (uint32_t u : program_.tasks[task_].deps)
            for (const StoreRecord& s : stores_[u])
                if ((s.tensor == tensor && overlaps(row, row + span, s.r0, s.r1) && overlaps(col, col + cols, s.c0, s.c1)) ||
                    (s.tensor != tensor && s.tensor == roots_[tensor]))  // a view: its bytes in another 2D shape
                    op_.deps.push_back(s.op);
        record_access(tensor);
        touch(dst, rows, cols, true);
        finish();
    }

    /// `transpose`: dst receives the region's transpose (cols x rows).
    void move(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef src, BufferRef dst,
              bool transpose = false) {
        begin(DfxOpKind::Move);
        region(tensor, row, col, rows, cols);
        op_.src = src;
        op_.dst = dst;
        op_.transpose = transpose;
        touch(src, rows, cols, false);
        if (transpose)
            touch(dst, cols, rows, true);
        else
            touch(dst, rows, cols, true);
        finish();
    }

    /// A convolution's A tile: pixels I by K chunk Q gathered from the task's input rows
    /// (`halo`, all of them in `panel`) into `dst` (docs/compiler.md, "Convolution").
    void gather(uint32_t tensor, uint64_t row, Span1 I, Span1 Q, ConvGeometry::Rows halo, uint64_t width,
                BufferRef panel, BufferRef dst) {
        begin(DfxOpKind::Move);
        region(tensor, row + I.first, Q.first, I.count, Q.count);
        op_.src = panel;
        op_.dst = dst;
        op_.gather = true;
        op_.halo_first = halo.first;
        op_.halo_rows = halo.count;
        touch(panel, std::max<uint64_t>(1, halo.count * width), pitch(panel.buffer), false);
        touch(dst, I.count, Q.count, true);
        finish();
    }

    /// `bounds`: the region of the tensor's 2D view it writes, when not rows x cols at (row,
    /// col) (a row of contiguous values that wraps onto the view's next rows).
    void store(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef src,
               const Extent2* bounds = nullptr, uint64_t step = 1) {
        begin(DfxOpKind::Store);
        region(tensor, row, col, rows, cols);
        op_.row_step = step;
        op_.src = src;
        touch(src, rows, cols, false);
        const Extent2 w = bounds ? *bounds : Extent2{row, row + row_span(rows, step), col, col + cols};
        if (needed_.count(task_)) stores_[task_].push_back({op_.id, tensor, w.r0, w.r1, w.c0, w.c1});
        wait_for_reused_space(tensor);
        record_access(tensor);
        finish();
    }

    /// With plan-memory: the current DRAM op's access to `tensor`, kept for the tasks that
    /// others depend on (wait_for_reused_space reads it).
    void record_access(uint32_t tensor) {
        if (!accesses_.empty() && needed_.count(task_)) accesses_[task_].push_back({roots_[tensor], op_.id});
    }

    /// With plan-memory, a STORE into `tensor` may overwrite a dead tensor's DRAM: it waits for
    /// every access, in the tasks its task depends on (add_reuse_deps put the accessors there),
    /// to a tensor whose bytes it reuses: one whose lifetime ended before this one's began and
    /// whose range overlaps its own (docs/compiler.md, "Memory planning").
    void wait_for_reused_space(uint32_t tensor) {
        if (accesses_.empty()) return;
        const MemoryPlan& plan = *memory_plan_;
        const uint32_t b = roots_[tensor];
        for (uint32_t u : program_.tasks[task_].deps)
            for (const auto& [a, op] : accesses_[u])
                if (plan.reuses(b, a)) op_.deps.push_back(op);
    }

    /// `c_in`: the accumulators start from this C tile (a partial sum) instead of zero.
    void matmul(BufferRef a, BufferRef b, Span1 I, Span1 J, Span1 Q, bool accumulate, const BufferRef* c_in) {
        const uint64_t m = I.count, n = J.count, k = Q.count;
        begin(DfxOpKind::Matmul);
        op_.row = I.first;
        op_.col = J.first;
        op_.k_first = Q.first;
        op_.a = a;
        op_.b = b;
        op_.m = uint32_t(m);
        op_.n = uint32_t(n);
        op_.k = uint32_t(k);
        op_.accumulate = accumulate;
        touch(a, m, k, false);
        touch(b, k, n, false);
        if (c_in) {
            op_.load_c = true;
            op_.c = *c_in;
            touch(*c_in, m, n, false);
        }
        tracker_.access(kAccumulators, 0, 1, true, op_.id, op_.deps);
        finish();
    }

    void drain(BufferRef c, bool has_bias, BufferRef bias, Span1 I, Span1 J, Activation activation, float alpha,
               float beta, const Epilogue& epilogue = {}) {
        const uint64_t m = I.count, n = J.count;
        begin(DfxOpKind::Drain);
        op_.row = I.first;
        op_.col = J.first;
        op_.c = c;
        op_.dst = c;
        op_.has_bias = has_bias;
        op_.bias = bias;
        op_.m = uint32_t(m);
        op_.n = uint32_t(n);
        op_.activation = activation;
        op_.alpha = alpha;
        op_.beta = beta;
        tracker_.access(kAccumulators, 0, 1, false, op_.id, op_.deps);
        if (has_bias) touch(bias, 1, n, false);
        op_.has_scale = epilogue.has_scale;
        op_.has_residual = epilogue.has_residual;
        if (epilogue.has_scale) op_.scale = epilogue.scale, touch(epilogue.scale, 1, n, false);
        if (epilogue.has_residual) op_.residual = epilogue.residual, touch(epilogue.residual, m, n, false);
        touch(c, m, n, true);
        finish();
    }

    void vector(const VectorOperands& v, BufferRef a, BufferRef b, BufferRef bias, BufferRef c, Span1 I,
                uint32_t step = 0) {
        const uint64_t m = I.count, n = v.cols;
        begin(DfxOpKind::Vector);
        op_.row = I.first;
        op_.step = step;
        op_.a = a;
        op_.c = c;
        op_.dst = c;
        op_.m = uint32_t(m);
        op_.n = uint32_t(n);
        touch(a, m * v.a_view_rows(), v.a_view_cols(), false);
        if (v.b) {
            op_.has_b = true;
            op_.b = b;
            touch(b, v.b_per_row() ? m : 1, v.b_width(), false);
        }
        if (v.weight) {
            op_.b = b;
            touch(b, v.weight_rows, v.weight_cols, false);
        }
        if (v.bias) {
            op_.has_bias = true;
            op_.bias = bias;
            touch(bias, 1, v.bias_cols, false);
        }
        touch(c, m * v.y_view_rows(), v.y_view_cols(), true);
        finish();
    }

    /// A vector op's task: its row vectors once, then each row tile through L3 and L2, the
    /// function on L2, and back out (docs/compiler.md, "Vector ops").
    void expand_vector(const Task& task, const Kernel& kernel) {
        const VectorOperands v = vector_operands(program_.graph, kernel.op);
        const uint64_t cols = v.cols, tm = kernel.tile.tm;
        if (v.transpose) return expand_transpose(task, v, tm);
        if (!v.chain.empty()) return expand_chain(task, v, tm);
        const BufferRef b3_row{Buffer::Bias3, 0, 0}, b2_row{Buffer::Bias2, 0, 0};
        const BufferRef w3{Buffer::Strip, 0, 0}, w2{Buffer::B2, 0, 0};
        const bool b_per_row = v.b_per_row();
        const uint64_t b_cols = v.b_width();
        if (v.b && !b_per_row) {
            load(*v.b, 0, 0, 1, b_cols, b3_row);
            move(*v.b, 0, 0, 1, b_cols, b3_row, b2_row);
        }
        if (v.weight) {
            load(*v.weight, 0, 0, v.weight_rows, v.weight_cols, w3);
            move(*v.weight, 0, 0, v.weight_rows, v.weight_cols, w3, w2);
        }
        if (v.bias) {
            load(*v.bias, 0, 0, 1, v.bias_cols, b3_row);
            move(*v.bias, 0, 0, 1, v.bias_cols, b3_row, b2_row);
        }
        for (uint32_t i = task.r0; i < task.r1; ++i) {
            const Span1 I = tile_span(v.rows, uint32_t(tm), i);
            const uint32_t s = (i - task.r0) % 2;
            const BufferRef a3{Buffer::Panel, s, 0}, a2{Buffer::A2, s, 0}, y2{Buffer::C2, s, 0}, y3{Buffer::Out, s, 0};
            // A window op's planes: in_h view rows of in_w each (a_view_rows() is 1 otherwise).
            const uint64_t a_rows = v.a_view_rows(), y_rows = v.y_view_rows();
            load(v.a, I.first * a_rows, 0, I.count * a_rows, v.a_view_cols(), a3);
            move(v.a, I.first * a_rows, 0, I.count * a_rows, v.a_view_cols(), a3, a2);
            BufferRef b2 = v.weight ? w2 : b2_row;
            if (b_per_row && !v.period) {
                const BufferRef b3{Buffer::Strip, s, 0};
                b2 = {Buffer::B2, s, 0};
                load(*v.b, I.first, 0, I.count, b_cols, b3);
                move(*v.b, I.first, 0, I.count, b_cols, b3, b2);
            }
            // A cut softmax: a VECTOR per piece, each with its mask rows at the piece's place.
            for_each_piece(v, I.first, I.count, [&](uint64_t first, uint64_t count) {
                const uint64_t at = (first - I.first) * cols;
                BufferRef piece_b = b2;
                if (b_per_row && v.period) {
                    const uint64_t row = v.mask_row(first), rows = v.mask_rows(count);
                    piece_b = {Buffer::B2, s, at};
                    load(*v.b, row, 0, rows, cols, {Buffer::Strip, s, at});
                    move(*v.b, row, 0, rows, cols, {Buffer::Strip, s, at}, piece_b);
                }
                vector(v, {a2.buffer, s, at}, piece_b, b2_row, {y2.buffer, s, at * v.y_width() / cols},
                       {first, count});
            });
            if (!v.reduces()) {
                move(v.y, I.first * y_rows, 0, I.count * y_rows, v.y_view_cols(), y2, y3);
                store(v.y, I.first * y_rows, 0, I.count * y_rows, v.y_view_cols(), y3);
                continue;
            }
            // A reduction's rows x 1 tile is I.count contiguous values, on chip and in DRAM:
            // one row of them, at the first's place in y's 2D view.
            const FlatRegion r = flat_region(program_.graph.tensor(v.y), I.first, I.count);
            move(v.y, r.row, r.col, 1, I.count, y2, y3);
            store(v.y, r.row, r.col, 1, I.count, y3, &r.bounds);
        }
    }

    /// A vector_chain's task: its vectors once, then per row tile a and the row inputs in
    /// through L3 and L2, the steps' commands one after the other on L2 (each reading the
    /// previous result, A2 and C2 by turns), the last result out (docs/compiler.md, "Row fusion").
    void expand_chain(const Task& task, const VectorOperands& v, uint64_t tm) {
        const ChainLayout l = chain_layout(v);
        const uint64_t cols = v.cols;
        // The row slots hold the plan's row tile (plan_buffers: at most the largest task's rows).
        const uint64_t slot_rows = std::min<uint64_t>(tm, extents_[task.kernel].rows);
        for (size_t i = 0; i < l.vectors.size(); ++i) {
            const BufferRef at3{Buffer::Bias3, 0, l.vector_at[i]}, at2{Buffer::Bias2, 0, l.vector_at[i]};
            load(l.vectors[i], 0, 0, 1, l.vector_width[i], at3);
            move(l.vectors[i], 0, 0, 1, l.vector_width[i], at3, at2);
        }
        for (uint32_t i = task.r0; i < task.r1; ++i) {
            const Span1 I = tile_span(v.rows, uint32_t(tm), i);
            const uint32_t s = (i - task.r0) % 2;
            load(v.a, I.first, 0, I.count, cols, {Buffer::Panel, s, 0});
            move(v.a, I.first, 0, I.count, cols, {Buffer::Panel, s, 0}, {Buffer::A2, s, 0});
            for (size_t p = 0; p < l.row_inputs.size(); ++p) {
                const uint64_t at = p * slot_rows * cols;
                load(l.row_inputs[p], I.first, 0, I.count, cols, {Buffer::Strip, s, at});
                move(l.row_inputs[p], I.first, 0, I.count, cols, {Buffer::Strip, s, at}, {Buffer::B2, s, at});
            }
            BufferRef in{Buffer::A2, s, 0}, out{Buffer::C2, s, 0};
            for (uint32_t k = 0; k < v.chain.size(); ++k) {
                const VectorOperands& step = v.chain[k];
                const bool row_b = step.b && step.b_per_row();
                BufferRef b{Buffer::Bias2, 0, step.weight ? l.weight_at[k] : l.b_at[k]};
                if (row_b) b = {Buffer::B2, s, l.b_at[k] * slot_rows * cols};
                vector(step, in, b, {Buffer::Bias2, 0, l.bias_at[k]}, out, I, k);
                std::swap(in, out);
            }
            move(v.y, I.first, 0, I.count, cols, in, {Buffer::Out, s, 0});
            store(v.y, I.first, 0, I.count, cols, {Buffer::Out, s, 0});
        }
    }

    /// A Transpose's task: per row tile (whole matrices) a LOAD into L3, per matrix a
    /// transposing MOVE into L2, the tile's transposes back to L3 and out (docs/compiler.md,
    /// "Transpose"). No compute: every DRAM byte is read once and written once.
    void expand_transpose(const Task& task, const VectorOperands& v, uint64_t tm) {
        const uint64_t r = v.matrix_rows, c = v.cols;
        for (uint32_t i = task.r0; i < task.r1; ++i) {
            const Span1 I = tile_span(v.rows, uint32_t(tm), i);
            const uint32_t s = (i - task.r0) % 2;
            const BufferRef a3{Buffer::Panel, s, 0}, y3{Buffer::Out, s, 0};
            load(v.a, I.first, 0, I.count, c, a3);
            const uint64_t matrices = I.count / r, y_row = I.first / r * c;
            for (uint64_t m = 0; m < matrices; ++m)
                move(v.a, I.first + m * r, 0, r, c, {Buffer::Panel, s, m * r * c}, {Buffer::A2, s, m * c * r}, true);
            move(v.y, y_row, 0, matrices * c, r, {Buffer::A2, s, 0}, y3);
            store(v.y, y_row, 0, matrices * c, r, y3);
        }
    }

    /// A copy op's task: each piece DRAM -> L3 -> DRAM, a transposed one through L2 (a
    /// transposing MOVE there and back to L3); pieces alternate between two slots
    /// (docs/compiler.md, "Layout ops").
    void expand_copies(const Task& task, const Kernel& kernel, const CopyOperands& op) {
        uint32_t n = 0;
        const TileShape& t = kernel.tile;
        for_each_piece(op.copies, t.tm, t.tn, t.tk, task.r0, task.r1, task.c0, task.c1, [&](const CopyPiece& p) {
            const Copy& x = p.copy;
            const uint32_t s = n++ % 2;
            const BufferRef l3{Buffer::Panel, s, 0}, l2{Buffer::A2, s, 0}, out{Buffer::Out, s, 0};
            load(x.src, x.src_row, x.src_col, x.rows, x.cols, l3, x.src_step);
            if (!x.transpose) return store(x.dst, x.dst_row, x.dst_col, x.rows, x.cols, l3, nullptr, x.dst_step);
            move(x.src, x.src_row, x.src_col, x.rows, x.cols, l3, l2, true);
            move(x.dst, x.dst_row, x.dst_col, x.cols, x.rows, l2, out);
            store(x.dst, x.dst_row, x.dst_col, x.cols, x.rows, out, nullptr, x.dst_step);
        });
    }

    void expand(uint32_t t) {
        task_ = t;
        tracker_.clear();
        const Task& task = program_.tasks[t];
        const Kernel& kernel = program_.kernels[task.kernel];
        plan_ = &plans_[task.kernel];
        const Graph& g = program_.graph;
        if (copies_[task.kernel]) return expand_copies(task, kernel, *copies_[task.kernel]);
        if (flash_[task.kernel]) {
            FlashSink sink(*this);
            return expand_flash_task(*flash_[task.kernel], kernel.tile, task, sink);
        }
        if (is_vector_op(g.ops()[kernel.op])) return expand_vector(task, kernel);
        if (is_ffn_op(g.ops()[kernel.op])) {
            Emitter emitter(*this);
            return expand_ffn_task(ffn_operands(g, kernel.op), kernel.tile, task, emitter);
        }
        const MatmulOperands op = matmul_operands(g, kernel.op);
        const uint64_t M = op.m, N = op.n, K = op.k;
        const TileShape tile = kernel.tile;
        const bool os = kernel.dataflow == Dataflow::OutputStationary || op.conv;
        const Extent2 e = task_elements(program_, task);
        const uint64_t kc = tile.pass_k(K);
        const uint32_t passes = tile_count(K, uint32_t(kc));
        // Where C tile column J starts in `out` when it holds the task's C (plan_buffers).
        const uint64_t band_rows = extents_[task.kernel].rows;
        auto band = [&](const Span1& J) { return (J.first - e.c0) / tile.tn * band_rows * tile.tn; };
        // Blocks (plan_buffers): the panel holds `panel_tiles` fabric tiles' blocks per chunk.
        const uint64_t block = uint64_t(os ? tile.tm : tile.tn) * tile.tk;
        const uint64_t panel_tiles =
            os ? tile_count(extents_[task.kernel].rows, tile.tm) : tile_count(extents_[task.kernel].cols, tile.tn);
        // The task's matrices in the operands' 2D views (a batched matmul's; 0 otherwise).
        const uint64_t ra = op.a_row(task.batch), rb = op.b_row(task.batch), rc = op.c_row(task.batch);
        // A's block (I, Q) and B's block (Q, J) in and out of L3 as stored: a transposed
        // operand's region is the other way round, and its move to L2 transposes it.
        const auto load_a = [&](Span1 I, Span1 Q, BufferRef dst) {
            if (op.trans_a) return load(op.a, ra + Q.first, I.first, Q.count, I.count, dst);
            load(op.a, ra + I.first, Q.first, I.count, Q.count, dst);
        };
        const auto load_b = [&](Span1 Q, Span1 J, BufferRef dst) {
            if (op.trans_b) return load(op.b, rb + J.first, Q.first, J.count, Q.count, dst);
            load(op.b, rb + Q.first, J.first, Q.count, J.count, dst);
        };
        const auto move_a = [&](Span1 I, Span1 Q, BufferRef src, BufferRef dst) {
            if (op.trans_a) return move(op.a, ra + Q.first, I.first, Q.count, I.count, src, dst, true);
            move(op.a, ra + I.first, Q.first, I.count, Q.count, src, dst);
        };
        const auto move_b = [&](Span1 Q, Span1 J, BufferRef src, BufferRef dst) {
            if (op.trans_b) return move(op.b, rb + J.first, Q.first, J.count, Q.count, src, dst, true);
            move(op.b, rb + Q.first, J.first, Q.count, J.count, src, dst);
        };

        // A convolution: the input rows the task's pixels read, loaded once, whole (the panel).
        ConvGeometry::Rows halo;
        if (op.conv) {
            halo = op.conv->region(e.r0, e.r1);
            if (halo.count)
                load(op.a, ra + halo.first * op.conv->w, 0, halo.count * op.conv->w, op.conv->cg, {Buffer::Panel, 0, 0});
        }
        uint32_t chunk = 0, fabric_tile = 0, strips = 0;
        // Outer loop: strips of the streamed operand; inner: fabric tiles along the panel.
        const uint32_t outer0 = os ? task.c0 : task.r0, outer1 = os ? task.c1 : task.r1;
        const uint32_t inner0 = os ? task.r0 : task.c0, inner1 = os ? task.r1 : task.c1;
        for (uint32_t p = 0; p < passes; ++p) {
            const Span1 P = tile_span(K, uint32_t(kc), p);  // this pass's part of K
            const bool last = p + 1 == passes;
            const uint32_t ks = tile_count(P.count, tile.tk);
            if (p == 0 && op.bias) {
                const uint64_t br = op.bias_row(task.batch);
                load(*op.bias, br, e.c0, 1, e.c1 - e.c0, {Buffer::Bias3, 0, 0});
                move(*op.bias, br, e.c0, 1, e.c1 - e.c0, {Buffer::Bias3, 0, 0}, {Buffer::Bias2, 0, 0});
                move(*op.bias, br, e.c0, 1, e.c1 - e.c0, {Buffer::Bias2, 0, 0}, {Buffer::Bias1, 0, 0});
            }
            if (p == 0 && op.scale) {
                const uint64_t br = op.bias_row(task.batch);
                load(*op.scale, br, e.c0, 1, e.c1 - e.c0, {Buffer::Scale3, 0, 0});
                move(*op.scale, br, e.c0, 1, e.c1 - e.c0, {Buffer::Scale3, 0, 0}, {Buffer::Scale2, 0, 0});
                move(*op.scale, br, e.c0, 1, e.c1 - e.c0, {Buffer::Scale2, 0, 0}, {Buffer::Scale1, 0, 0});
            }
            for (uint32_t s = outer0; s < outer1; ++s) {
                const uint32_t slot = strips++ % 2;
                const Span1 S = tile_span(os ? N : M, os ? tile.tn : tile.tm, s);
                for (uint32_t f = inner0; f < inner1; ++f) {
                    const Span1 F = tile_span(os ? M : N, os ? tile.tm : tile.tn, f);
                    const Span1 I = os ? F : S, J = os ? S : F;
                    const uint32_t fs = fabric_tile++ % 2;
                    const BufferRef c1{Buffer::C1, fs, 0}, c2{Buffer::C2, fs, 0};
                    // One pass: the C tile goes to this strip's out slot; several: to its place
                    // in the task's C, where the next pass picks it up again.
                    const BufferRef out =
                        passes > 1 ? BufferRef{Buffer::Out, 0, band(J) + (I.first - e.r0) * tile.tn}
                                   : BufferRef{Buffer::Out, slot, os ? (I.first - e.r0) * tile.tn : (J.first - e.c0)};
                    if (p > 0) {
                        move(op.c, rc + I.first, J.first, I.count, J.count, out, c2);
                        move(op.c, rc + I.first, J.first, I.count, J.count, c2, c1);
                    }
                    // The residual tile comes in while the fabric sums (the last pass only).
                    Epilogue epilogue;
                    if (last && op.scale)
                        epilogue.has_scale = true, epilogue.scale = {Buffer::Scale1, 0, J.first - e.c0};
                    if (last && op.residual) {
                        const BufferRef r3{Buffer::Residual3, fs, 0}, r2{Buffer::Residual2, fs, 0};
                        epilogue.has_residual = true, epilogue.residual = {Buffer::Residual1, fs, 0};
                        load(*op.residual, rc + I.first, J.first, I.count, J.count, r3);
                        move(*op.residual, rc + I.first, J.first, I.count, J.count, r3, r2);
                        move(*op.residual, rc + I.first, J.first, I.count, J.count, r2, epilogue.residual);
                    }
                    for (uint32_t q = 0; q < ks; ++q, ++chunk) {
                        Span1 Q = tile_span(P.count, tile.tk, q);
                        Q.first += P.first;
                        const uint32_t cs = chunk % 2;
                        // This fabric tile's block of chunk q in the panel and the strip.
                        const BufferRef panel{Buffer::Panel, 0, (q * panel_tiles + (f - inner0)) * block};
                        const BufferRef strip{Buffer::Strip, slot, q * uint64_t(os ? tile.tn : tile.tm) * tile.tk};
                        const BufferRef a_src = os ? panel : strip, b_src = os ? strip : panel;
                        // Each block comes in just before its first use: the panel's with the
                        // task's first strip, a strip's with its first fabric tile. The fabric
                        // starts on the first block while the rest stream in behind it.
                        if (s == outer0 && !op.conv) {
                            if (os)
                                load_a(I, Q, panel);
                            else
                                load_b(Q, J, panel);
                        }
                        if (f == inner0) {
                            if (os)
                                load_b(Q, J, strip);
                            else
                                load_a(I, Q, strip);
                        }
                        if (op.conv)
                            gather(op.a, ra, I, Q, halo, op.conv->w, {Buffer::Panel, 0, 0}, {Buffer::A2, cs, 0});
                        else
                            move_a(I, Q, a_src, {Buffer::A2, cs, 0});
                        move_b(Q, J, b_src, {Buffer::B2, cs, 0});
                        move(op.a, ra + I.first, Q.first, I.count, Q.count, {Buffer::A2, cs, 0}, {Buffer::A1, cs, 0});
                        move(op.b, rb + Q.first, J.first, Q.count, J.count, {Buffer::B2, cs, 0}, {Buffer::B1, cs, 0});
                        matmul({Buffer::A1, cs, 0}, {Buffer::B1, cs, 0}, I, J, Q, q > 0, q == 0 && p > 0 ? &c1 : nullptr);
                    }
                    // The epilogue belongs to the finished sum: the last pass only.
                    drain(c1, last && op.bias.has_value(), {Buffer::Bias1, 0, J.first - e.c0}, I, J,
                          last ? op.activation : Activation::None, last ? op.alpha : 1.0f, op.beta, epilogue);
                    move(op.c, rc + I.first, J.first, I.count, J.count, c1, c2);
                    move(op.c, rc + I.first, J.first, I.count, J.count, c2, out);
                }
                if (!last) continue;
                if (os) {
                    const BufferRef done{Buffer::Out, passes > 1 ? 0 : slot, passes > 1 ? band(S) : 0};
                    store(op.c, rc + e.r0, S.first, e.r1 - e.r0, S.count, done);
                } else if (passes == 1) {
                    store(op.c, rc + S.first, e.c0, S.count, e.c1 - e.c0, {Buffer::Out, slot, 0});
                } else {  // a row strip crosses every band: one STORE per C tile
                    for (uint32_t f = inner0; f < inner1; ++f) {
                        const Span1 J = tile_span(N, tile.tn, f);
                        store(op.c, rc + S.first, J.first, S.count, J.count,
                              {Buffer::Out, 0, band(J) + (S.first - e.r0) * tile.tn});
                    }
                }
            }
        }
    }

    /// A fused attention's ops, emitted with this expander's dependency tracking.
    class FlashSink : public FlashOpSink {
    public:
        explicit FlashSink(Expander& x) : x_(x) {}
        void load(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef dst) override {
            x_.load(tensor, row, col, rows, cols, dst);
        }
        void move(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef src,
                  BufferRef dst, bool transpose) override {
            x_.move(tensor, row, col, rows, cols, src, dst, transpose);
        }
        void store(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef src) override {
            x_.store(tensor, row, col, rows, cols, src);
        }
        void matmul_drain(BufferRef a, BufferRef b, BufferRef c, uint32_t m, uint32_t n, uint32_t k) override {
            x_.matmul(a, b, {0, m}, {0, n}, {0, k}, false, nullptr);
            x_.drain(c, false, {}, {0, m}, {0, n}, Activation::None, 1.0f, 1.0f);
        }
        void vector(const FlashVector& v) override {
            x_.begin(DfxOpKind::Vector);
            DfxOp& op = x_.op_;
            op.function = v.function;
            op.row = v.query, op.col = v.key;
            op.accumulate = !v.first;
            op.a = v.a, op.c = op.dst = v.y;
            op.m = v.rows, op.n = v.cols;
            op.has_bias = true, op.bias = v.state;
            x_.touch(v.a, v.rows, v.cols, false);
            if (v.has_mask) {
                op.has_b = true, op.b = v.mask;
                x_.touch(v.mask, v.mask_rows, v.mask_cols, false);
            }
            // The statistics are read and written; the accumulation reads its y too.
            x_.touch(v.state, 1, 3 * uint64_t(v.rows), true);
            if (v.function == hw::VectorFunction::OnlineAccumulate) x_.touch(v.y, v.rows, v.cols, false);
            x_.touch(v.y, v.rows, v.cols, true);
            x_.finish();
        }

    private:
        Expander& x_;
    };

    const Program& program_;
    const std::function<void(const DfxOp&)>& visit_;
    std::vector<TaskExtent> extents_;
    std::vector<std::optional<FlashOperands>> flash_;  ///< per kernel: a fused attention's
    std::vector<std::optional<CopyOperands>> copies_;  ///< per kernel: a copy op's
    std::vector<std::vector<BufferSpec>> plans_;
    const std::vector<BufferSpec>* plan_ = nullptr;
    std::vector<std::vector<StoreRecord>> stores_;
    std::vector<uint32_t> roots_;  ///< per graph tensor: alias_roots() (a view's reads wait for its root's stores)
    std::set<uint32_t> needed_;
    std::optional<MemoryPlan> memory_plan_;  ///< with plan-memory, when a tensor reuses another's bytes
    /// With plan-memory: per task others depend on, its DRAM ops as (root tensor, op id).
    std::vector<std::vector<std::pair<uint32_t, uint32_t>>> accesses_;
    HazardTracker tracker_;
    DfxOp op_;
    uint32_t next_id_ = 0;
    uint32_t task_ = 0;
};

}  // namespace

void for_each_op(const Program& program, const std::function<void(const DfxOp&)>& visit) {
    Expander(program, visit).run();
}

}  // namespace kpu::compiler
