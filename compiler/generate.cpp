#include "compiler/generate.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

#include "compiler/attention_pattern.h"
#include "compiler/compile_error.h"
#include "compiler/ffn_fusion.h"
#include "compiler/flash_attention.h"
#include "compiler/layout_pass.h"
#include "compiler/long_rows.h"
#include "compiler/passes/fold_batchnorm.h"
#include "compiler/passes/fold_constants.h"
#include "compiler/passes/fold_qdq.h"
#include "compiler/passes/flatten_linear.h"
#include "compiler/passes/fuse_epilogue.h"
#include "compiler/passes/fuse_rows.h"
#include "compiler/requantize.h"
#include "compiler/keep_in_l3.h"
#include "compiler/memory_plan.h"
#include "compiler/unit_choice.h"
#include "compiler/ops/op_schema.h"
#include "compiler/tiler.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {
namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/// Sum over the tiles of an extent of ceil(tile / fabric): fabric blocks along one axis.
uint64_t fabric_blocks(uint64_t extent, uint32_t tile, uint32_t first, uint32_t last, uint32_t fabric) {
    uint64_t sum = 0;
    for (uint32_t i = first; i < last; ++i) sum += ceil_div(tile_span(extent, tile, i).count, fabric);
    return sum;
}

/// Whether the graph's DRAM tensors are planned with reuse (when reuse lowers no peak, the
/// plan is one range per tensor and the caller checks their sum as without the pass). Throws
/// when the reusing plan does not fit `target`'s DRAM: the message names the tensor that ends
/// highest, the level, required and available bytes.
bool refuse_planned_dram(const Graph& graph, const hw::Config& target) {
    const uint64_t dram = uint64_t(target.dram.count) * target.dram.capacity_bytes;
    const MemoryPlan plan = plan_memory(graph, target.dram.interleave_bytes, true);
    if (!plan.reuse) return false;
    if (plan.extent <= dram) return true;
    std::ostringstream msg;
    msg << "DRAM memory exceeded: " << plan.extent << " bytes required, " << dram << " available (config '"
        << target.name << "'; tensor '" << graph.tensor(plan.top).name << "' (" << graph.tensor(plan.top).bytes()
        << " bytes) ends highest, with every dead tensor's space reused)";
    throw CompileError(msg.str());
}

}  // namespace

Hints kernel_hints(const Program& program, uint32_t kernel, uint32_t first_task, uint32_t end_task) {
    const Kernel& kr = program.kernels[kernel];
    Hints h;
    end_task = uint32_t(std::min<size_t>(end_task, program.tasks.size()));
    for (uint32_t i = first_task; i < end_task; ++i) {
        const Task& t = program.tasks[i];
        if (t.kernel != kernel) continue;
        uint64_t read = 0, write = 0;
        task_traffic(program, t, read, write);
        h.dram_read_bytes += read;
        h.dram_write_bytes += write;
    }
    const Op& op = program.graph.ops()[kr.op];
    if (is_copy_op(program.graph, op) || is_vector_op(op)) return h;  // no MACs, no fabric cycles
    if (is_ffn_op(op)) {
        const FfnOperands f = ffn_operands(program.graph, kr.op);
        for (uint32_t i = first_task; i < end_task; ++i)
            if (program.tasks[i].kernel == kernel)
                ffn_compute(f, kr.tile, program.tasks[i], program.target.fabric_rows, program.target.fabric_cols,
                            h.macs, h.compute_cycles);
        h.arithmetic_intensity = 2.0 * double(h.macs) / double(h.dram_read_bytes + h.dram_write_bytes);
        return h;
    }
    if (is_flash_op(op)) {  // its two matmuls per key block
        const FlashOperands f = flash_operands(program.graph, kr.op);
        for (uint32_t i = first_task; i < end_task; ++i) {
            if (program.tasks[i].kernel != kernel) continue;
            uint64_t macs = 0, cycles = 0;
            flash_task_work(f, kr.tile, program.tasks[i], program.target.fabric_rows, program.target.fabric_cols, macs, cycles);
            h.macs += macs, h.compute_cycles += cycles;
        }
        h.arithmetic_intensity = 2.0 * double(h.macs) / double(h.dram_read_bytes + h.dram_write_bytes);
        return h;
    }
    const MatmulOperands mm = matmul_operands(program.graph, kr.op);
    const uint64_t M = mm.m, N = mm.n, K = mm.k;
    h.macs = mm.batch * M * N * K;
    h.compute_cycles = mm.batch *
                       fabric_blocks(M, kr.tile.tm, 0, tile_count(M, kr.tile.tm), program.target.fabric_rows) *
                       fabric_blocks(N, kr.tile.tn, 0, tile_count(N, kr.tile.tn), program.target.fabric_cols) * K;
    h.arithmetic_intensity = 2.0 * double(h.macs) / double(h.dram_read_bytes + h.dram_write_bytes);
    return h;
}

Target target_of(const hw::Config& config) {
    return {config.name, config.fabric.rows, config.fabric.cols, config.compute_tiles, config.overrides};
}

uint32_t add_kernel(Program& program, uint32_t op, Dataflow dataflow, const TilingChoice& choice,
                    ProducerIndex* producers) {
    std::optional<ProducerIndex> own;  // without the caller's: one of the tasks so far
    if (!producers) {
        producers = &own.emplace(program);
        for (uint32_t t = 0; t < program.tasks.size(); ++t) producers->add(t);
    }
    const uint32_t kernel = uint32_t(program.kernels.size()), first_task = uint32_t(program.tasks.size());
    program.kernels.push_back({op, dataflow, choice.tile, {}});
    const KernelDims mm = kernel_dims(program.graph, op);
    const uint32_t Mt = tile_count(mm.m, choice.tile.tm);
    const uint32_t Nt = tile_count(mm.n, choice.tile.tn);
    // A batched matmul: the same task grid over each of its C matrices in turn.
    for (uint32_t b = 0; b < mm.batch; ++b)
        for (uint32_t r = 0; r < Mt; r += choice.task_rows)
            for (uint32_t c = 0; c < Nt; c += choice.task_cols) {
                program.tasks.push_back(
                    {kernel, r, std::min(Mt, r + choice.task_rows), c, std::min(Nt, c + choice.task_cols), {}, b});
                const uint32_t task = uint32_t(program.tasks.size() - 1);
                program.tasks.back().deps = producers->producers(task);
                producers->add(task);
            }
    Hints& h = program.kernels.back().hints;
    h = kernel_hints(program, kernel, first_task);  // its tasks are the ones just added
    h.estimated_cycles = uint64_t(std::llround(choice.cycles));
    program.hints.add(h);
    return kernel;
}

Program compile(const Graph& source_graph, const hw::Config& target, const CompileOptions& options,
                Weights* weights) {
    Program program;
    program.graph = source_graph;
    // check() again on a copy: parse_graph has checked it already (checking is idempotent), but
    // a graph built in C++ may not have been, and tiling an unchecked one reads shapes and
    // roles that are not there.
    program.graph.check("graph");
    if (options.passes.enabled(Pass::FoldConstants)) {  // on the source ops, before expansion
        program.graph = fold_constants(program.graph, weights);
        program.passes.push_back(Pass::FoldConstants);
    }
    if (options.passes.enabled(Pass::FoldBatchnorm)) {  // on the source Conv, before expansion
        program.graph = fold_batchnorm(program.graph, weights);
        program.passes.push_back(Pass::FoldBatchnorm);
    }
    if (options.passes.enabled(Pass::FoldQdq) &&  // a quantized (QDQ) model's pairs into int8 ops, on the source ops
        std::any_of(program.graph.ops().begin(), program.graph.ops().end(), [](const Op& op) {
            return op.kind == "QuantizeLinear" || op.kind == "DequantizeLinear";
        })) {
        program.graph = fold_qdq(program.graph, weights, options.notes);
        program.passes.push_back(Pass::FoldQdq);
    }
    program.graph = choose_units(program.graph, target, nullptr, options.depthwise);  // a depthwise Conv's unit
    if (options.passes.enabled(Pass::FuseAttention)) {  // before the composites: an Attention that fits stays whole
        program.graph = fuse_attention_patterns(program.graph, target, weights, options.notes);  // ONNX's spelled-out chains
        program.graph = fuse_attention(program.graph, target);
        program.passes.push_back(Pass::FuseAttention);
    }
    // Composites (Attention, ops over other axes) become their parts and layout conversions
    // stay only where needed before the check for what lowers: an op may lower only in the
    // layout the pass gives it (a per-channel Add between two convolutions, in NHWC).
    program.graph = expand_composites(program.graph, "graph");
    program.graph = sink_transposes(program.graph);
    program.graph = flatten_quantized_linears(program.graph);
    require_lowerable(program.graph, "graph");
    program.graph = split_long_rows(program.graph, target);
    if (options.passes.enabled(Pass::FuseEpilogue)) {  // on the lowered ops, after the layout is settled
        program.graph = fuse_epilogue(flatten_linear(program.graph));  // ONNX's 3-D linears as matrices
        program.passes.push_back(Pass::FuseEpilogue);
    }
    if (options.passes.enabled(Pass::FuseFfn)) {  // after fuse-epilogue: an FFN's matmuls in the fused form
        program.graph = fuse_ffn(program.graph, target, options.dataflow, options.notes);
        program.passes.push_back(Pass::FuseFfn);
    }
    if (options.passes.enabled(Pass::FuseRows)) {  // after the matmul fusions: what is left of the vector ops
        program.graph = fuse_rows(program.graph);
        program.passes.push_back(Pass::FuseRows);
    }
    // Quantized matmuls' and convolutions' multipliers as their drains' scale rows; every
    // element type one the target computes.
    program.graph = add_requantization(program.graph, weights);
    require_config_types(program.graph, target);
    const Graph& graph = program.graph;
    program.target = target_of(target);
    // The binder places every tensor in DRAM, each from an interleave boundary: a graph that
    // cannot fit is refused before any tiling (whose search grows with the dimensions).
    const uint64_t dram = uint64_t(target.dram.count) * target.dram.capacity_bytes, block = target.dram.interleave_bytes;
    uint64_t need = 0;
    const std::vector<uint32_t> roots = alias_roots(graph);
    for (uint32_t t = 0; t < graph.tensors().size(); ++t)  // a view's output shares its input's
        if (roots[t] == t) need += (graph.tensor(t).bytes() + block - 1) / block * block;
    // With plan-memory the planned peak (dead tensors' space reused) is what must fit.
    const bool plan = options.passes.enabled(Pass::PlanMemory);
    bool reused = false;
    if (plan) {
        program.graph = order_for_memory(program.graph, block);  // the op order of the smaller peak, if any
        reused = refuse_planned_dram(graph, target);
    }
    if (!reused && need > dram) {
        std::ostringstream msg;
        msg << "the graph's tensors need " << need << " bytes of DRAM (each from a " << block
            << "-byte interleave boundary) but config '" << target.name << "' has " << dram;
        throw CompileError(msg.str());
    }
    ProducerIndex producers(program);
    for (uint32_t op = 0; op < graph.ops().size(); ++op) {
        if (is_view_op(graph.ops()[op])) continue;  // an alias: no kernel, no DFX ops
        const auto [dataflow, choice] = choose_op_tiling(target, graph, op, options.dataflow);
        add_kernel(program, op, dataflow, choice, &producers);
    }
    if (plan) {  // last: after every pass that changes the kernels
        // Reuse orders every writer of a tensor after every task that used the space before:
        // on a program of many small tasks that is a product of task counts. Beyond
        // kMaxReuseDeps the program keeps one range per tensor (its .kpu stays readable),
        // said in the notes.
        std::vector<Task> without = program.tasks;
        const uint64_t added = add_reuse_deps(program, plan_memory(program.graph, block, true));
        if (added > kMaxReuseDeps) {
            program.tasks = std::move(without);
            if (need > dram) {
                std::ostringstream msg;
                msg << "the graph's tensors need " << need << " bytes of DRAM (each from a " << block
                    << "-byte interleave boundary) but config '" << target.name << "' has " << dram
                    << " (reusing dead tensors' space would add " << added << " task dependencies)";
                throw CompileError(msg.str());
            }
            if (options.notes)
                options.notes->push_back("plan-memory: DRAM reuse not applied: it would add " + std::to_string(added) +
                                         " task dependencies to " + std::to_string(program.tasks.size()) +
                                         " tasks, more than " + std::to_string(kMaxReuseDeps));
            return program;
        }
        program.passes.push_back(Pass::PlanMemory);
        program.memory.emplace().granule = block;  // what program_memory_plan plans at
        program.memory = estimate_memory(program, block);  // the SRAM marks: record_sram_marks
        if (options.passes.enabled(Pass::KeepInL3)) {  // on the tiled program: the L3 its buffers leave
            if (keep_in_l3(program, target, without)) program.passes.push_back(Pass::KeepInL3);
        }
    }
    return program;
}

bool OpCounts::operator==(const OpCounts& o) const {
    return total == o.total && std::equal(std::begin(by_kind), std::end(by_kind), o.by_kind);
}

OpCounts count_ops(const Program& program) {
    OpCounts c;
    std::vector<std::optional<FlashOperands>> flash(program.kernels.size());
    for (uint32_t k = 0; k < program.kernels.size(); ++k)
        if (is_flash_op(program.graph.ops()[program.kernels[k].op])) flash[k] = flash_operands(program.graph, program.kernels[k].op);
    for (const Task& t : program.tasks) {
        const Kernel& kr = program.kernels[t.kernel];
        if (flash[t.kernel]) {
            flash_task_ops(*flash[t.kernel], kr.tile, t, c.by_kind);
            continue;
        }
        if (is_copy_op(program.graph, program.graph.ops()[kr.op])) {  // per piece: LOAD, STORE (+ 2 MOVEs transposed)
            const TileShape& s = kr.tile;
            for_each_piece(copy_operands(program.graph, kr.op).copies, s.tm, s.tn, s.tk, t.r0, t.r1, t.c0, t.c1,
                           [&](const CopyPiece& p) {
                               ++c.by_kind[int(DfxOpKind::Load)];
                               ++c.by_kind[int(DfxOpKind::Store)];
                               c.by_kind[int(DfxOpKind::Move)] += p.copy.transpose ? 2 : 0;
                           });
            continue;
        }
        if (is_ffn_op(program.graph.ops()[kr.op])) {
            add_ffn_op_counts(ffn_operands(program.graph, kr.op), kr.tile, t, c.by_kind);
            continue;
        }
        if (is_vector_op(program.graph.ops()[kr.op])) {
            // Per task: each row vector in (LOAD, MOVE); per row tile: a (and a per-row b)
            // in (LOAD, MOVE), VECTOR, the result out (MOVE, STORE).
            const VectorOperands v = vector_operands(program.graph, kr.op);
            if (!v.chain.empty()) {  // per task: each vector in; per row tile: a and the row inputs in, the steps, y out
                const ChainLayout l = chain_layout(v);
                const uint64_t row_tiles = t.r1 - t.r0, ins = 1 + l.row_inputs.size();
                c.by_kind[int(DfxOpKind::Load)] += l.vectors.size() + row_tiles * ins;
                c.by_kind[int(DfxOpKind::Move)] += l.vectors.size() + row_tiles * (ins + 1);
                c.by_kind[int(DfxOpKind::Store)] += row_tiles;
                c.by_kind[int(DfxOpKind::Vector)] += row_tiles * v.chain.size();
                continue;
            }
            if (v.transpose) {  // per row tile: LOAD, a MOVE per matrix, MOVE, STORE
                const uint64_t tm = kr.tile.tm, row_tiles = t.r1 - t.r0;
                const uint64_t matrices = (std::min(v.rows, t.r1 * tm) - t.r0 * tm) / v.matrix_rows;
                c.by_kind[int(DfxOpKind::Load)] += row_tiles;
                c.by_kind[int(DfxOpKind::Move)] += matrices + row_tiles;
                c.by_kind[int(DfxOpKind::Store)] += row_tiles;
                continue;
            }
            // A cut softmax (VectorOperands::period) has a VECTOR per piece, its mask per piece.
            const bool b_per_row = v.b_per_row();
            const uint64_t vectors = (v.b && !b_per_row) + v.weight.has_value() + v.bias.has_value();
            const uint64_t row_tiles = t.r1 - t.r0, tm = kr.tile.tm;
            const uint64_t pieces = piece_count(v, tm, t.r0 * tm, std::min(v.rows, t.r1 * tm));
            const uint64_t b_loads = b_per_row ? pieces : 0;
            c.by_kind[int(DfxOpKind::Load)] += vectors + row_tiles + b_loads;
            c.by_kind[int(DfxOpKind::Move)] += vectors + 2 * row_tiles + b_loads;
            c.by_kind[int(DfxOpKind::Store)] += row_tiles;
            c.by_kind[int(DfxOpKind::Vector)] += pieces;
            continue;
        }
        const MatmulOperands mm = matmul_operands(program.graph, kr.op);
        const bool bias = mm.bias.has_value();
        // K chunks summed over the passes; every pass after the first brings each C tile back.
        const uint64_t K = mm.k, kc = kr.tile.pass_k(K), passes = tile_count(K, uint32_t(kc));
        const uint64_t ks = (passes - 1) * tile_count(kc, kr.tile.tk) + tile_count(K - (passes - 1) * kc, kr.tile.tk);
        const uint64_t fabric_tiles = uint64_t(t.r1 - t.r0) * (t.c1 - t.c0);
        const uint64_t strips = kr.dataflow == Dataflow::OutputStationary || mm.conv ? t.c1 - t.c0 : t.r1 - t.r0;
        // One block per fabric tile along the panel and per strip, per K chunk; a convolution's
        // panel is one LOAD of its input rows (none when its pixels read only padding).
        const uint64_t panel_loads =
            mm.conv ? (mm.conv->region(uint64_t(t.r0) * kr.tile.tm, std::min<uint64_t>(mm.m, uint64_t(t.r1) * kr.tile.tm)).count ? 1 : 0)
                    : ks * (fabric_tiles / strips);
        // The drain epilogue's scale row once per task, its residual once per C tile.
        const uint64_t rows = (bias ? 1 : 0) + (mm.scale ? 1 : 0), residuals = mm.residual ? fabric_tiles : 0;
        c.by_kind[int(DfxOpKind::Load)] += panel_loads + ks * strips + rows + residuals;
        c.by_kind[int(DfxOpKind::Move)] +=
            2 * rows + 2 * residuals + fabric_tiles * (4 * ks + 2 * passes + 2 * (passes - 1));
        c.by_kind[int(DfxOpKind::Store)] +=
            task_stores(mm.conv ? Dataflow::OutputStationary : kr.dataflow, passes, strips, fabric_tiles);
        c.by_kind[int(DfxOpKind::Matmul)] += fabric_tiles * ks;
        c.by_kind[int(DfxOpKind::Drain)] += fabric_tiles * passes;
    }
    for (uint64_t n : c.by_kind) c.total += n;
    return c;
}

OpCounts count_expanded_ops(const Program& program) {
    OpCounts c;
    for_each_op(program, [&](const DfxOp& op) {
        ++c.by_kind[int(op.kind)];
        ++c.total;
    });
    return c;
}

}  // namespace kpu::compiler
