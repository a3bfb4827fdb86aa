// kpu-compile: graph JSON or ONNX model -> .kpu (DFX program), and .kpu + config -> bound program.
//   kpu-compile GRAPH.json|MODEL.onnx -o OUT.kpu [--config FILE] [--dataflow output-stationary|weight-stationary] [-v]
//   kpu-compile --bind --config FILE X.kpu [-o BOUND.json]
//   kpu-compile ... --precision bf16|fp16|int8 [--calibration DIR] (docs/quantization.md)
// Without --config a program is tiled for the portable target (portable_target.h), which every
// shipped config binds as it is; --bind re-blocks a program that does not fit (reblock.h).
// Any error is one line "kpu-compile: error: ..." and exit status 1.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <malloc.h>
#include <set>
#include <sstream>

#include <boost/program_options.hpp>

#include "compiler/binder.h"
#include "compiler/bound_program_json.h"
#include "compiler/compile_error.h"
#include "compiler/ffn_fusion.h"
#include "compiler/flash_attention.h"
#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "compiler/kpu_format.h"
#include "compiler/keep_in_l3.h"
#include "compiler/memory_plan.h"
#include "compiler/onnx_import.h"
#include "compiler/portable_target.h"
#include "compiler/reblock.h"
#include "compiler/ops/op_schema.h"
#include "compiler/replay.h"
#include "compiler/unit_choice.h"
#include "hardware/config.h"
#include "hardware/host_memory.h"
#include "hardware/input_file.h"
#include "hardware/output_file.h"
#include "sc_main/calibration.h"
#include "sc_main/host_budget.h"
#include "sc_main/npy.h"

namespace po = boost::program_options;
using namespace kpu::compiler;

namespace {

std::string human(double bytes) {
    char text[32];
    const char* units[] = {"B", "KB", "MB", "GB"};
    int u = 0;
    while (bytes >= 1000 && u < 3) bytes /= 1000, ++u;
    std::snprintf(text, sizeof text, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return text;
}

/// Where a move reads or writes: a buffer's slot, or DRAM (the tensor region itself).
std::string place(kpu::hw::Level level, const BufferRef& ref) {
    if (level == kpu::hw::Level::Dram) return to_string(level);
    return std::string(to_string(ref.buffer)) + "[" + std::to_string(ref.slot) + "]";
}

void print_op(std::ostream& out, const Program& p, const DfxOp& op) {
    out << "    " << op.id << " task " << op.task << " " << to_string(op.kind);
    if (op.kind == DfxOpKind::Matmul)
        out << " " << to_string(op.a.buffer) << "[" << op.a.slot << "] x " << to_string(op.b.buffer) << "["
            << op.b.slot << "] m=" << op.m << " n=" << op.n << " k=" << op.k << (op.accumulate ? " accumulate" : "");
    else if (op.kind == DfxOpKind::Drain)
        out << " -> " << to_string(op.c.buffer) << "[" << op.c.slot << "] m=" << op.m << " n=" << op.n
            << (op.alpha != 1.0f ? " alpha=" + std::to_string(op.alpha) : "") << (op.has_bias ? " +bias" : "")
            << (op.has_bias && op.beta != 1.0f ? " beta=" + std::to_string(op.beta) : "") << " "
            << to_string(op.activation);
    else if (op.kind == DfxOpKind::Vector)
        out << (op.function != kpu::hw::VectorFunction::Copy ? std::string(" ") + kpu::hw::to_string(op.function) : "")
            << " " << to_string(op.a.buffer) << "[" << op.a.slot << "]"
            << (op.has_b ? std::string(" ") + to_string(op.b.buffer) + "[" + std::to_string(op.b.slot) + "]" : "")
            << " -> " << to_string(op.c.buffer) << "[" << op.c.slot << "] m=" << op.m << " n=" << op.n;
    else
        out << " " << p.graph.tensor(op.tensor).name << "[" << op.row << ":" << op.row + row_span(op.rows, op.row_step)
            << (op.row_step != 1 ? ":" + std::to_string(op.row_step) : "") << ", " << op.col
            << ":" << op.col + op.cols << "] "
            << place(op.src_level(), op.src) << " -> " << place(op.dst_level(), op.dst) << (op.transpose ? " transposed" : "")
            << (op.gather ? " gathered from input rows " + std::to_string(op.halo_first) + ":" +
                                std::to_string(op.halo_first + op.halo_rows)
                          : "");
    out << " deps [";
    for (size_t i = 0; i < op.deps.size(); ++i) out << (i ? " " : "") << op.deps[i];
    out << "]\n";
}

/// The drain epilogue's stages after the bias, as the op summary spells them: " * scale + r".
std::string epilogue_text(const Graph& g, const MatmulOperands& op) {
    return (op.scale ? " * " + g.tensor(*op.scale).name : std::string()) +
           (op.residual ? " + " + g.tensor(*op.residual).name : std::string());
}

/// "  fused with: bn1, relu1" for an op a fusion pass made (Op::fused_with).
void print_fused(std::ostream& out, const Op& op) {
    if (op.fused_with.empty()) return;
    out << "  fused with:";
    for (size_t i = 0; i < op.fused_with.size(); ++i) out << (i ? ", " : " ") << op.fused_with[i];
    out << "\n";
}

/// A kernel on the fabric: its DRAM traffic, MACs, fabric cycles and estimate.
void print_fabric_hints(std::ostream& out, const Program& p, const Hints& h) {
    out << "  DRAM read " << h.dram_read_bytes << " B (" << human(double(h.dram_read_bytes)) << "), write "
        << h.dram_write_bytes << " B (" << human(double(h.dram_write_bytes)) << "), " << h.macs
        << " MACs, arithmetic intensity " << h.arithmetic_intensity << " FLOP/B\n";
    out << "  fabric cycles " << h.compute_cycles << " (one tile), estimated " << h.estimated_cycles << " cycles on "
        << p.target.config << "\n";
}

/// A fused attention's kernel: its blocks, tasks, DRAM traffic (closed form) and estimate.
void summarize_flash(std::ostream& out, const Program& p, uint32_t k, uint32_t tasks) {
    const Graph& g = p.graph;
    const Kernel& kr = p.kernels[k];
    const FlashOperands f = flash_operands(g, kr.op);
    const auto named = [&](uint32_t t) { return g.tensor(t).name + shape_string(g.tensor(t).shape); };
    out << "op '" << g.ops()[kr.op].name << "': " << named(f.y) << " = flash_attention(" << named(f.q) << ", "
        << named(f.k) << ", " << named(f.v) << (f.mask ? ", " + named(*f.mask) : "") << ")"
        << (f.causal ? " causal" : "") << " on the fabric and the vector engine (online softmax)\n";
    print_fused(out, g.ops()[kr.op]);
    out << "  blocks of " << kr.tile.tm << " queries x " << kr.tile.tn << " keys, head size " << f.e << " x " << f.ev
        << ", " << f.matrices() << " matrices of " << f.sq << " x " << f.skv << ", " << tasks
        << " tasks; no " << f.sq << " x " << f.skv << " scores in DRAM\n";
    print_fabric_hints(out, p, kr.hints);
}

/// A fused FFN's kernel: both matmuls, the row blocks, the traffic.
void summarize_ffn(std::ostream& out, const Program& p, uint32_t k, uint32_t tasks) {
    const Graph& g = p.graph;
    const Kernel& kr = p.kernels[k];
    const FfnOperands f = ffn_operands(g, kr.op);
    const auto name = [&](uint32_t t) { return g.tensor(t).name + shape_string(g.tensor(t).shape); };
    const bool act = f.activation != Activation::None;
    out << "op '" << g.ops()[kr.op].name << "': " << name(f.y) << " = " << (act ? std::string(to_string(f.activation)) + "(" : "(")
        << name(f.x) << " @ " << name(f.w1) << (f.b1 ? " + " + g.tensor(*f.b1).name : "") << ") @ " << name(f.w2)
        << (f.b2 ? " + " + g.tensor(*f.b2).name : "") << ", the hidden " << f.m << " x " << f.hidden << " kept on chip\n";
    print_fused(out, g.ops()[kr.op]);
    out << "  row blocks of " << kr.tile.tm << " (H block " << kr.tile.tm << " x " << f.hidden << " in L3.hidden), fabric tiles "
        << kr.tile.tm << "x" << kr.tile.tn << ", K chunks of " << kr.tile.tk << ", " << tasks << " tasks\n";
    print_fabric_hints(out, p, kr.hints);
}

/// estimate_memory's line (docs/compiler.md, "Memory planning"); with `verbose`, every DRAM
/// tensor's range and lifetime in the plan.
void print_memory(std::ostream& out, const Program& p, const kpu::hw::Config& config, bool verbose) {
    const MemoryEstimate e = p.memory ? *p.memory : estimate_memory(p, config);  // compile() recorded it on config
    uint64_t sum = 0;
    const MemoryPlan plan = program_memory_plan(p, config.dram.interleave_bytes);
    for (uint32_t t = 0; t < p.graph.tensors().size(); ++t)
        if (plan.placed[t]) sum += p.graph.tensor(t).bytes();
    out << "memory: peak DRAM " << e.dram << " bytes (weights " << e.weights << ", activations " << e.activations
        << " at the peak; the tensors add up to " << sum << (plan.reuse ? ", dead ones' space reused" : "")
        << "), ";
    if (sram_marks_estimated(p))
        out << "peak SRAM per compute tile L3 " << e.l3 << ", L2 " << e.l2 << ", L1 " << e.l1 << " bytes\n";
    else
        out << "peak SRAM not estimated (" << count_ops(p).total << " ops to bind, more than " << kMaxSramMarkOps
            << "; kpu-sim --stats measures it)\n";
    const L3Plan l3 = program_l3_plan(p);
    const std::vector<uint32_t> roots = l3.count ? alias_roots(p.graph) : std::vector<uint32_t>();
    const auto listed = [&](uint32_t t) { return l3.count && l3.resident[t] && roots[t] == t; };  // a view: its root
    if (l3.count) {
        uint64_t bytes = 0;
        for (uint32_t t = 0; t < p.graph.tensors().size(); ++t)
            if (listed(t)) bytes += p.graph.tensor(t).bytes();
        out << "keep-in-l3: " << l3.count << (l3.count == 1 ? " intermediate (" : " intermediates (") << bytes
            << " bytes) in L3 between their ops, not in DRAM\n";
    }
    if (!verbose) return;
    for (uint32_t t = 0; t < p.graph.tensors().size(); ++t) {
        if (!listed(t)) continue;
        const Tensor& x = p.graph.tensor(t);
        const uint64_t row_bytes = x.shape.size() >= 2 ? x.shape.back() * dtype_bytes(x.dtype) : x.bytes();
        const uint64_t band = std::min(x.bytes(), l3.band_rows[t] * row_bytes), bands = (x.bytes() + band - 1) / band;
        out << "  " << x.name << " (" << to_string(*x.role) << ", " << x.bytes() << " bytes): L3 [" << l3.offset[t]
            << ", " << l3.offset[t] + band << ") of " << bands << (bands == 1 ? " tile from tile " : " tiles from tile ")
            << l3.first_tile[t] << " (" << l3.band_rows[t] << " rows each), live from step " << plan.lifetime[t].first
            << " to " << plan.lifetime[t].last << "\n";
    }
    for (uint32_t t = 0; t < p.graph.tensors().size(); ++t) {
        if (!plan.placed[t]) continue;
        const Tensor& x = p.graph.tensor(t);
        out << "  " << x.name << " (" << to_string(*x.role) << ", " << x.bytes() << " bytes): DRAM ["
            << plan.offset[t] << ", " << plan.offset[t] + x.bytes() << "), live from step " << plan.lifetime[t].first
            << " to " << plan.lifetime[t].last << "\n";
    }
}

void summarize(std::ostream& out, const Program& p, bool verbose) {
    const Graph& g = p.graph;
    std::vector<uint32_t> tasks_of(p.kernels.size());  // counted once: a program may have 100 000 kernels
    for (const Task& t : p.tasks) ++tasks_of[t.kernel];
    for (uint32_t k = 0; k < p.kernels.size(); ++k) {
        const Kernel& kr = p.kernels[k];
        if (is_copy_op(g, g.ops()[kr.op])) {
            const Op& op = g.ops()[kr.op];
            const CopyOperands c = copy_operands(g, kr.op);
            uint32_t tasks = tasks_of[k], transposed = 0;
            for (const Copy& x : c.copies) transposed += x.transpose;
            const auto list = [&](const std::vector<uint32_t>& tensors) {
                std::string text;
                for (uint32_t t : tensors)
                    if (t != kNoTensor && !is_compile_time_value(g, t))
                        text += (text.empty() ? "" : ", ") + g.tensor(t).name + shape_string(g.tensor(t).shape);
                return text;
            };
            out << "op '" << op.name << "': " << list(op.outputs) << " = " << op.kind << "(" << list(op.inputs)
                << ") by the movers (" << c.copies.size() << " copies, " << transposed << " transposed)\n";
            print_fused(out, g.ops()[kr.op]);
            out << "  pieces of up to " << kr.tile.tn << " x " << kr.tile.tk << ", " << tasks << " tasks\n";
            out << "  DRAM read " << kr.hints.dram_read_bytes << " B (" << human(double(kr.hints.dram_read_bytes))
                << "), write " << kr.hints.dram_write_bytes << " B (" << human(double(kr.hints.dram_write_bytes))
                << "), estimated " << kr.hints.estimated_cycles << " cycles on " << p.target.config << "\n";
            continue;
        }
        if (is_vector_op(g.ops()[kr.op])) {
            const VectorOperands v = vector_operands(g, kr.op);
            const uint32_t tasks = tasks_of[k];
            out << "op '" << g.ops()[kr.op].name << "': " << g.tensor(v.y).name << shape_string(g.tensor(v.y).shape)
                << " = " << (v.transpose ? "Transpose" : kpu::hw::to_string(v.command.function)) << "(" << g.tensor(v.a).name
                << shape_string(g.tensor(v.a).shape)
                << (v.b ? ", " + g.tensor(*v.b).name + shape_string(g.tensor(*v.b).shape) : "")
                << (v.transpose ? ") by the movers (a transposing move per matrix)\n" : ") on the vector engine\n");
            print_fused(out, g.ops()[kr.op]);
            if (!v.chain.empty()) {  // a vector_chain: its commands per row tile, the intermediates on chip
                out << "  steps per row tile:";
                for (size_t i = 0; i < v.chain.size(); ++i)
                    out << (i ? ", " : " ") << kpu::hw::to_string(v.chain[i].command.function);
                out << " (the intermediates stay on chip)\n";
            }
            out << "  as " << v.rows << " x " << v.cols << ", row tiles of " << kr.tile.tm << ", "
                << tile_count(v.rows, kr.tile.tm) << " row tiles, " << tasks << " tasks\n";
            if (v.windowed()) {  // a row per plane
                const kpu::hw::VectorWindow& w = v.command.window;
                out << "  planes of " << w.in_h << " x " << w.in_w << " -> " << w.out_h << " x " << w.out_w << ", kernel "
                    << w.kernel_h << " x " << w.kernel_w << ", " << v.rows << " planes\n";
            }
            out << "  DRAM read " << kr.hints.dram_read_bytes << " B (" << human(double(kr.hints.dram_read_bytes))
                << "), write " << kr.hints.dram_write_bytes << " B (" << human(double(kr.hints.dram_write_bytes))
                << "), estimated " << kr.hints.estimated_cycles << (v.transpose ? " cycles on " : " vector engine cycles on ") << p.target.config << "\n";
            continue;
        }
        if (is_ffn_op(g.ops()[kr.op])) {
            summarize_ffn(out, p, k, tasks_of[k]);
            continue;
        }
        if (is_flash_op(g.ops()[kr.op])) {
            summarize_flash(out, p, k, tasks_of[k]);
            continue;
        }
        const MatmulOperands op = matmul_operands(g, kr.op);
        const uint64_t M = op.m, N = op.n, K = op.k;
        if (op.conv) {  // an implicit GEMM: the patches of X gathered on chip
            out << "op '" << g.ops()[kr.op].name << "': " << g.tensor(op.c).name << shape_string(g.tensor(op.c).shape)
                << " = conv(" << g.tensor(op.a).name << shape_string(g.tensor(op.a).shape) << ", " << g.tensor(op.b).name
                << shape_string(g.tensor(op.b).shape) << ")" << (op.bias ? " + " + g.tensor(*op.bias).name : "")
                << epilogue_text(g, op)
                << (op.activation != Activation::None ? std::string(", then ") + to_string(op.activation) : "")
                << " on the fabric: implicit GEMM " << M << "x" << N << "x" << K << ", im2col gathered on chip\n";
        } else {
            out << "op '" << g.ops()[kr.op].name << "': " << g.tensor(op.c).name << shape_string(g.tensor(op.c).shape)
                << " = " << (op.activation != Activation::None ? std::string(to_string(op.activation)) + "(" : "")
                << g.tensor(op.a).name << shape_string(g.tensor(op.a).shape) << (op.trans_a ? "^T" : "") << " @ "
                << g.tensor(op.b).name << shape_string(g.tensor(op.b).shape) << (op.trans_b ? "^T" : "")
                << (op.bias ? " + " + g.tensor(*op.bias).name : "") << epilogue_text(g, op)
                << (op.activation != Activation::None ? ")" : "")
                << "\n";
        }
        print_fused(out, g.ops()[kr.op]);
        uint32_t tasks = 0;
        for (const Task& t : p.tasks) tasks += t.kernel == k;
        out << "  dataflow " << to_string(kr.dataflow) << ", tiles " << kr.tile.tm << "x" << kr.tile.tn << "x"
            << kr.tile.tk << ", tile grid " << tile_count(M, kr.tile.tm) << "x" << tile_count(N, kr.tile.tn) << "x"
            << tile_count(K, kr.tile.tk) << (op.batch > 1 ? " per matrix, " + std::to_string(op.batch) + " matrices" : "")
            << ", " << tasks << " tasks";
        if (kr.tile.kc)
            out << ", K in " << tile_count(K, kr.tile.kc) << " passes of " << kr.tile.kc;
        out << "\n";
        print_fabric_hints(out, p, kr.hints);
    }
    const OpCounts c = count_ops(p);
    out << "ops " << c.total;
    for (const auto& [kind, name] : kDfxOpKindNames)
        if (kind != DfxOpKind::Vector || c.by_kind[int(kind)])  // matmul-only programs print as before
            out << ", " << name << " " << c.by_kind[int(kind)];
    out << "\ntotal DRAM traffic " << human(double(p.hints.dram_read_bytes + p.hints.dram_write_bytes)) << ", arithmetic intensity "
        << p.hints.arithmetic_intensity << " FLOP/B, estimated " << p.hints.estimated_cycles << " cycles"
        << (p.kernels.size() > 1 ? " (the ops' estimates, each op alone, added up)" : "") << "\n";
    if (verbose) {
        out << "tasks:\n";
        for (uint32_t t = 0; t < p.tasks.size(); ++t) {
            const Task& task = p.tasks[t];
            out << "    " << t << " kernel " << task.kernel << " tile rows [" << task.r0 << ", " << task.r1
                << ") cols [" << task.c0 << ", " << task.c1 << ")";
            if (!task.deps.empty()) out << " after " << task.deps.size() << " tasks";
            out << "\n";
        }
        out << "op stream (first 60 ops):\n";
        uint32_t shown = 0;
        for_each_op(p, [&](const DfxOp& op) {
            if (shown++ < 60) print_op(out, p, op);
        });
    }
}

void summarize_bound(std::ostream& out, const BoundProgram& b, const kpu::hw::Config& config) {
    uint64_t by_engine[5] = {0, 0, 0, 0, 0};
    std::set<uint32_t> tiles;
    uint64_t deps = 0;
    for (const BoundOp& op : b.ops) {
        ++by_engine[int(op.engine)];
        if (op.kind == BoundOp::Kind::Matmul || op.kind == BoundOp::Kind::Vector) tiles.insert(op.tile);
        deps += op.deps.size();
    }
    out << "bound to '" << b.config_name << "': " << b.ops.size() << " ops (dma " << by_engine[0] << ", block_mover "
        << by_engine[1] << ", streamer " << by_engine[2] << ", fabric " << by_engine[3]
        << (by_engine[4] ? ", vector " + std::to_string(by_engine[4]) : "") << "), " << deps
        << " dependencies, " << tiles.size() << " compute tiles used\n";
    out << "DRAM read " << b.dram_read_bytes << " B, write " << b.dram_write_bytes << " B, " << b.macs << " MACs\n";
    if (b.elided_moves)
        out << b.elided_moves << " on-chip moves elided (their " << b.elided_bytes
            << " bytes were already in place)\n";
    out << "replayed on '" << config.name << "': " << std::llround(replay_cycles(b, config)) << " cycles\n";
    for (const BoundTensor& t : b.tensors)
        out << "  " << t.role << " " << t.name << shape_string(t.shape) << " at DRAM 0x" << std::hex << t.dram_addr
            << std::dec << " (" << t.bytes << " B)\n";
}

/// Runs `step`; a CompileError it throws gets `what` in front (the file and config it was
/// about), unless it names the file already.
template <class Step>
auto naming(const std::string& what, Step step) {
    try {
        return step();
    } catch (const CompileError& e) {
        const std::string message = e.what();
        if (message.rfind(what.substr(0, what.find(' ')), 0) == 0) throw;
        throw CompileError(what + ": " + message);
    }
}

/// The calibration samples in `dir` for `graph` (docs/quantization.md): its .npy files, one per
/// sample, for a one-input graph, or its subdirectories, one per sample, each holding
/// <input>.npy for every input; in name order. A file of the wrong shape: one line naming it.
std::vector<kpu::cli::CalibrationSample> read_calibration_samples(const std::string& dir, const Graph& graph) {
    namespace fs = std::filesystem;
    std::error_code error;
    if (!fs::is_directory(dir, error)) throw CompileError("--calibration " + dir + ": not a directory");
    std::vector<uint32_t> inputs;
    for (uint32_t t = 0; t < graph.tensors().size(); ++t)
        if (graph.tensor(t).role == TensorRole::Input) inputs.push_back(t);
    std::vector<fs::path> files, dirs;
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
        if (e.is_directory()) dirs.push_back(e.path());
        else if (e.path().extension() == ".npy") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    std::sort(dirs.begin(), dirs.end());
    const auto read = [&](const fs::path& file, uint32_t t, kpu::cli::CalibrationSample& sample) {
        const Tensor& x = graph.tensor(t);
        kpu::cli::NpyArray a = kpu::cli::read_npy(file.string(), [&](const std::vector<uint64_t>& shape) {
            if (shape != x.shape)
                throw CompileError(file.string() + ": input '" + x.name + "' has shape " + shape_string(shape) +
                                   ", the graph's is " + shape_string(x.shape));
        });
        sample.shapes[x.name] = a.shape;
        sample.values[x.name] = std::move(a.data);
    };
    std::vector<kpu::cli::CalibrationSample> samples;
    if (!files.empty()) {
        if (inputs.size() != 1)
            throw CompileError("--calibration " + dir + ": the graph has " + std::to_string(inputs.size()) +
                               " inputs: give each sample as a subdirectory holding <input>.npy for each");
        for (const fs::path& file : files) {
            kpu::cli::CalibrationSample sample;
            sample.source = file.string();
            read(file, inputs[0], sample);
            samples.push_back(std::move(sample));
        }
        return samples;
    }
    for (const fs::path& d : dirs) {
        kpu::cli::CalibrationSample sample;
        sample.source = d.string();
        for (uint32_t t : inputs) {
            const fs::path file = d / (graph.tensor(t).name + ".npy");
            if (!fs::exists(file, error))
                throw CompileError(d.string() + ": no " + file.filename().string() + " for input '" + graph.tensor(t).name + "'");
            read(file, t, sample);
        }
        samples.push_back(std::move(sample));
    }
    return samples;
}

/// The --precision names: fp32, bf16, fp16, int8.
inline constexpr kpu::hw::EnumName<DType> kPrecisionNames[] = {
    {DType::Float32, "fp32"}, {DType::BFloat16, "bf16"}, {DType::Float16, "fp16"}, {DType::Int8, "int8"}};

int run(int argc, char** argv) {
    std::string input, output, config_path, dataflow_name = to_string(Dataflow::OutputStationary);
    const std::string dataflow_help =
        dataflow_name + " (default) or " + to_string(Dataflow::WeightStationary);
    std::vector<std::string> sets;
    std::string depthwise_name = "auto";
    std::string max_host_memory;
    std::string precision_name = "fp32", calibration_dir, calibration_method = "entropy";
    int opt_level = kDefaultOptLevel;
    std::vector<std::string> disabled_passes;
    bool bind_mode = false, verbose = false, help = false;
    po::options_description options("kpu-compile options");
    options.add_options()("help,h", po::bool_switch(&help), "show this help")(
        "output,o", po::value(&output), "output file (.kpu, or bound program JSON with --bind)")(
        "config", po::value(&config_path), "hardware config JSON (default: the portable target, which every shipped config binds)")(
        "set", po::value(&sets)->composing()->value_name("PATH=VALUE"),
        "override one config field before validation, as kpu-sim --set (repeatable)")(
        "dataflow", po::value(&dataflow_name), dataflow_help.c_str())(
        "depthwise-on", po::value(&depthwise_name),
        "where depthwise Convs run: auto (default: the lower estimate), fabric or vector")(
        "opt-level,O", po::value(&opt_level)->value_name("N"),
        "optimization level: 0 (no optimization pass), 1 (folding, epilogue fusion, memory planning), 2 "
        "(default: also FFN, attention and row fusion) or 3 (also intermediates kept in L3, fewer DRAM bytes "
        "but not always fewer cycles); docs/compiler.md, Passes")(
        "disable-pass", po::value(&disabled_passes)->composing()->value_name("NAME"),
        ("switch one optimization pass off (repeatable): " + kpu::hw::names_in(kPassNames)).c_str())(
        "bind", po::bool_switch(&bind_mode), "bind a .kpu to --config and show the bound program")(
        "precision", po::value(&precision_name)->value_name("P"),
        "the matmuls' and convolutions' element type: fp32 (default), bf16, fp16 or int8 (with --calibration); "
        "docs/quantization.md")(
        "calibration", po::value(&calibration_dir)->value_name("DIR"),
        "int8: the calibration samples, .npy files (one per sample, one-input models) or subdirectories of "
        "<input>.npy files, at least 100")(
        "calibration-method", po::value(&calibration_method)->value_name("M"),
        "int8: how activation ranges are chosen: minmax, percentile, mse or entropy (default)")(
        "max-host-memory", po::value(&max_host_memory)->value_name("GIB"),
        "the host memory binding may take, in GiB (default: what this host has available)")(
        "verbose,v", po::bool_switch(&verbose), "list tasks and the first ops of the stream");
    po::options_description hidden;
    hidden.add_options()("input", po::value(&input));
    po::options_description all;
    all.add(options).add(hidden);
    po::positional_options_description positional;
    positional.add("input", 1);
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
    if (help) {
        std::cout << "usage: kpu-compile GRAPH.json|MODEL.onnx -o OUT.kpu [--config FILE] [--set PATH=VALUE ...] [-O0|-O1|-O2|-O3] [--disable-pass NAME ...] [--dataflow D] [-v]\n"
                     "       kpu-compile ... --precision bf16|fp16 | --precision int8 --calibration DIR [--calibration-method M]\n"
                     "       kpu-compile --bind --config FILE [--set PATH=VALUE ...] X.kpu [-o BOUND.json]\n"
                  << options;
        return 0;
    }
    if (input.empty()) throw CompileError("no input file (see --help)");
    std::vector<kpu::hw::Override> overrides;
    for (const auto& text : sets) overrides.push_back(kpu::hw::parse_override(text));
    std::error_code same_error;
    if (!output.empty() && std::filesystem::equivalent(input, output, same_error))
        throw CompileError("-o " + output + " is the input file: writing it would destroy " + input);
    if (bind_mode) {
        if (config_path.empty()) throw CompileError("--bind needs --config FILE");
        if (vm.count("dataflow"))
            throw CompileError("--dataflow has no effect with --bind: the .kpu fixes each kernel's dataflow");
        const kpu::hw::Config config = kpu::hw::load_config(config_path, overrides);
        const Program source = kpu::cli::allocating("reading " + input, [&] { return read_kpu_file(input); });
        // What does not fit the config is re-blocked first (the binder would do it too): said here.
        ReblockReport reblocked;
        std::optional<Program> own;
        if (!fits_config(source, config))
            own = naming(input + " on '" + config.name + "'", [&] { return reblock(source, config, &reblocked); });
        const Program& program = own ? *own : source;
        // Binding holds every op (and -o their JSON): refused before it starts if this host
        // cannot hold them.
        const uint64_t ops = count_ops(program).total;
        const uint64_t need = ops * sizeof(BoundOp) * (output.empty() ? 1 : 4);
        const std::optional<uint64_t> limit =
            max_host_memory.empty() ? std::nullopt : std::optional<uint64_t>(kpu::hw::parse_host_memory_limit(max_host_memory));
        if (const std::string problem = kpu::hw::host_memory_problem(need, limit); !problem.empty())
            throw CompileError(input + " on '" + config.name + "': binding its " + std::to_string(ops) + " ops " + problem);
        const BoundProgram bound = kpu::cli::allocating("binding " + std::to_string(ops) + " ops of " + input, [&] {
            return naming(input + " on '" + config.name + "'", [&] { return bind(program, config); });
        });
        std::cout << describe(reblocked);
        summarize_bound(std::cout, bound, config);
        if (!output.empty()) {
            if (const std::string problem = kpu::hw::write_output_file(output, write_bound_program(bound));
                !problem.empty())
                throw CompileError(output + ": " + problem);
            std::cout << "wrote " << output << "\n";
        }
        return 0;
    }
    if (output.empty()) throw CompileError("no output file: give -o OUT.kpu");
    CompileOptions compile_options;
    if (!parse_depthwise_unit(depthwise_name, compile_options.depthwise))
        throw CompileError("--depthwise-on: unknown unit '" + depthwise_name + "' (" +
                           kpu::hw::names_in(kDepthwiseUnitNames) + ")");
    if (!parse_dataflow(dataflow_name, compile_options.dataflow))
        throw CompileError("--dataflow: unknown dataflow '" + dataflow_name + "' (" +
                           kpu::hw::names_in(kDataflowNames) + ")");
    if (opt_level < 0 || opt_level > kMaxOptLevel)
        throw CompileError("-O" + std::to_string(opt_level) + ": unknown optimization level (0 to " +
                           std::to_string(kMaxOptLevel) + ")");
    compile_options.passes.level = opt_level;
    for (const std::string& name : disabled_passes) {
        Pass pass;
        if (!parse_pass(name, pass))
            throw CompileError("--disable-pass: unknown pass '" + name + "' (" + kpu::hw::names_in(kPassNames) + ")");
        compile_options.passes.disabled.push_back(pass);
    }
    DType precision;
    if (!kpu::hw::value_in(kPrecisionNames, precision_name, precision))
        throw CompileError("--precision: unknown precision '" + precision_name + "' (" +
                           kpu::hw::names_in(kPrecisionNames) + ")");
    const kpu::cli::CalibrationMethod method = kpu::cli::parse_calibration_method(calibration_method);
    if (precision != DType::Int8 && (!calibration_dir.empty() || vm.count("calibration-method")))
        throw CompileError("--calibration and --calibration-method are for --precision int8");
    if (precision == DType::Int8 && calibration_dir.empty())
        throw CompileError("--precision int8 needs --calibration DIR (at least " +
                           std::to_string(kpu::cli::kMinCalibrationSamples) + " samples)");
    const kpu::hw::Config config =
        config_path.empty() ? portable_target(overrides) : kpu::hw::load_config(config_path, overrides);
    Graph graph;
    std::map<std::string, Weight> weights;
    if (is_onnx_path(input)) {
        ImportedModel model = import_onnx(input);
        if (!model.renamed.empty()) {
            std::cout << "ONNX names that are no file names, and the tensors' names for them:\n";
            for (const auto& [from, to] : model.renamed) std::cout << "  " << from << " -> " << to << "\n";
        }
        graph = std::move(model.graph);
        weights = std::move(model.weights);
    } else {
        graph = load_graph(input);
    }
    if (precision != DType::Float32) {
        config.fabric_type(to_string(precision));  // before the samples are read
        const std::vector<kpu::cli::CalibrationSample> samples =
            precision == DType::Int8 ? read_calibration_samples(calibration_dir, graph)
                                     : std::vector<kpu::cli::CalibrationSample>();
        graph = kpu::cli::apply_precision(graph, weights, precision, config, samples, method, compile_options.passes);
    }
    std::vector<UnitChoice> choices;  // what compile() decides again: shown here with its estimates
    naming(input + " for '" + config.name + "'",
           [&] { return choose_units(graph, config, &choices, compile_options.depthwise); });
    for (const UnitChoice& c : choices)
        std::cout << "Conv '" << c.op << "' (depthwise) runs on the " << (c.vector ? "vector engine" : "fabric")
                  << ": estimated " << std::llround(c.vector_cycles) << " cycles on the vector engine, "
                  << std::llround(c.fabric_cycles) << " on the fabric\n";
    std::vector<std::string> notes;  // what the passes left and why (-v)
    if (verbose) compile_options.notes = &notes;
    if (verbose && compile_options.passes.enabled(Pass::FuseAttention))  // why an Attention stays a composite
        for (const Op& op : graph.ops())
            if (op.kind == "Attention")
                if (const std::string why = flash_refusal(graph, op, config); !why.empty())
                    std::cout << "Attention '" << op.name << "' not fused (" << why << "): expanded\n";
    Program program = kpu::cli::allocating("compiling " + input, [&] {
        return naming(input + " for '" + config.name + "'", [&] { return compile(graph, config, compile_options, &weights); });
    });
    if (!weights.empty()) {  // beside the .kpu: <stem>.weights/<tensor>.npy
        program.weights = std::filesystem::path(output).stem().string() + ".weights";
        const std::filesystem::path dir = std::filesystem::path(output).parent_path() / program.weights;
        std::error_code error;
        std::filesystem::create_directories(dir, error);
        if (error) throw CompileError(dir.string() + ": cannot create directory: " + error.message());
        for (const auto& [name, w] : weights)
            kpu::cli::write_weight_npy((dir / (name + ".npy")).string(), w);  // in the weight's dtype
        std::cout << "wrote " << weights.size() << " weights to " << dir.string() << "\n";
    }
    std::string text = write_kpu(program);
    const auto refuse_too_large = [&] {
        if (text.size() > kpu::hw::kMaxInputBytes)  // the readers' bound: a file no tool would read back
            throw CompileError(input + ": the program's .kpu would be " + std::to_string(text.size() >> 20) + " MiB (" +
                               std::to_string(program.tasks.size()) + " tasks), more than the " +
                               std::to_string(kpu::hw::kMaxInputBytes >> 20) + " MiB a .kpu may have");
    };
    refuse_too_large();
    if (program.memory && sram_marks_estimated(program)) {  // they bind the program: only for one that can be written
        naming(input + " on '" + config.name + "'", [&] { record_sram_marks(program, config); });
        text = write_kpu(program);
        refuse_too_large();
    }
    if (const std::string problem = kpu::hw::write_output_file(output, text); !problem.empty())
        throw CompileError(output + ": " + problem);
    std::cout << "compiled " << input << " -> " << output << " (" << text.size() << " bytes) for '" << config.name
              << "'" << kpu::hw::set_flags(config.overrides) << ": " << config.compute_tiles << " compute tiles, " << config.fabric.rows << "x" << config.fabric.cols
              << " fabric\n";
    std::cout << "passes (-O" << compile_options.passes.level << "): ";
    for (size_t i = 0; i < program.passes.size(); ++i) std::cout << (i ? ", " : "") << to_string(program.passes[i]);
    std::cout << (program.passes.empty() ? "none\n" : "\n");
    for (const std::string& note : notes) std::cout << note << "\n";
    print_memory(std::cout, program, config, verbose);
    summarize(std::cout, program, verbose);
    if (program.kernels.size() > 1) {
        // Ops overlap (independent ones side by side, a layer's loads under the last one's
        // drains): the whole program replayed is the estimate to compare with kpu-sim.
        // Binding and replaying costs about 2 s per million ops: beyond this, on request only.
        constexpr uint64_t kWholeReplayOps = 200'000;
        const uint64_t ops = count_ops(program).total;
        if (ops > kWholeReplayOps) {
            std::cout << "whole program not replayed (" << ops << " ops, more than " << kWholeReplayOps
                      << "): kpu-compile --bind --config FILE OUT.kpu replays it\n";
        } else {
            const double whole = replay_cycles(bind(program, config), config);
            std::cout << "whole program replayed on '" << config.name << "': " << std::llround(whole) << " cycles\n";
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // The tiler binds and replays candidate after candidate, each holding its ops (tens of MB
    // at 2048^3): kept in the heap once freed, their pages serve the next candidate instead of
    // going back to the system and faulting in again.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::string what = e.what();
        for (char& ch : what)
            if (ch == '\n') ch = ' ';
        std::cerr << "kpu-compile: error: " << what << "\n";
        return 1;
    }
}
