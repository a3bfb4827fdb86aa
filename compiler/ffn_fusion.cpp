#include "compiler/ffn_fusion.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "compiler/compile_error.h"
#include "compiler/generate.h"
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

/// Bytes of one element of every tensor of an ffn kernel: float32 only (its fusion pass declines
/// other types).
constexpr uint64_t kFfnElementBytes = dtype_bytes(DType::Float32);

namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/// X [.., K], W1 [K, hidden], W2 [hidden, N], B1 [hidden], B2 [N] -> Y [.., N].
void infer_ffn(InferContext& c) {
    c.need_rank(0, 1, kMaxRank);
    c.need_rank(1, 2, 2);
    c.need_rank(2, 2, 2);
    const std::vector<uint64_t>& x = c.shape(0);
    const std::vector<uint64_t>& w1 = c.shape(1);
    const std::vector<uint64_t>& w2 = c.shape(2);
    if (x.back() != w1[0])
        c.fail(c.describe(0) + " dimension " + std::to_string(x.size() - 1) + " is " + std::to_string(x.back()) +
               " but " + c.describe(1) + " dimension 0 is " + std::to_string(w1[0]));
    if (w1[1] != w2[0])
        c.fail(c.describe(1) + " dimension 1 is " + std::to_string(w1[1]) + " but " + c.describe(2) +
               " dimension 0 is " + std::to_string(w2[0]));
    for (size_t i : {size_t(3), size_t(4)}) {
        if (!c.has_input(i)) continue;
        const uint64_t want = i == 3 ? w1[1] : w2[1];
        if (c.shape(i) != std::vector<uint64_t>{want})
            c.fail(c.describe(i) + " must have shape [" + std::to_string(want) + "]");
        c.same_dtype(0, i);
    }
    c.same_dtype(0, 1);
    c.same_dtype(0, 2);
    need_activation(c);
    std::vector<uint64_t> y = x;
    y.back() = w2[1];
    c.output(0, y, c.dtype(0));
}

/// Sum over row or column tiles [first, last) of `tile` along `extent` of ceil(tile / fabric).
uint64_t fabric_blocks(uint64_t extent, uint64_t tile, uint64_t first, uint64_t last, uint32_t fabric) {
    uint64_t sum = 0;
    for (uint64_t i = first; i < last; ++i) sum += ceil_div(tile_span(extent, uint32_t(tile), uint32_t(i)).count, fabric);
    return sum;
}

/// The task's Y rows and columns (elements).
struct TaskBox {
    uint64_t r0, r1, c0, c1;
};
TaskBox box_of(const FfnOperands& f, TileShape tile, const Task& task) {
    return {uint64_t(task.r0) * tile.tm, std::min(f.m, uint64_t(task.r1) * tile.tm), uint64_t(task.c0) * tile.tn,
            std::min(f.n, uint64_t(task.c1) * tile.tn)};
}

}  // namespace

void register_ffn(OpRegistry& registry) {
    registry.add({"ffn", {"X", "W1", "W2", "B1", "B2"}, 3, false, {"Y"}, 1, false,
                  {{"activation", AttrType::String, std::string("none")}}, infer_ffn,
                  [](const Graph&, const Op&) { return std::string(); }, {}});
}

bool is_ffn_op(const Op& op) { return op.kind == "ffn"; }

FfnOperands ffn_operands(const Graph& graph, uint32_t index) {
    const Op& op = graph.ops().at(index);
    if (!is_ffn_op(op)) throw CompileError("op '" + op.name + "' (" + op.kind + ") is not an ffn");
    FfnOperands f;
    f.x = op.inputs.at(0), f.w1 = op.inputs.at(1), f.w2 = op.inputs.at(2), f.y = op.outputs.at(0);
    if (op.inputs.size() > 3 && op.inputs[3] != kNoTensor) f.b1 = op.inputs[3];
    if (op.inputs.size() > 4 && op.inputs[4] != kNoTensor) f.b2 = op.inputs[4];
    if (const auto it = op.attributes.find("activation"); it != op.attributes.end())
        parse_activation(std::get<std::string>(it->second), f.activation);
    const std::vector<uint64_t>& w1 = graph.tensor(f.w1).shape;
    f.k = w1.at(0), f.hidden = w1.at(1), f.n = graph.tensor(f.w2).shape.at(1);
    f.m = graph.tensor(f.x).elements() / f.k;
    return f;
}

std::vector<BufferSpec> plan_ffn_buffers(const FfnOperands& f, TileShape tile) {
    const uint64_t tm = tile.tm, t = tile.tn;
    std::vector<BufferSpec> plan;
    auto add = [&](Buffer buffer, uint32_t slots, uint64_t rows, uint64_t pitch, uint32_t tensor) {
        plan.push_back({buffer, level_of(buffer), slots, rows * pitch * kFfnElementBytes, uint32_t(pitch), tensor, uint32_t(kFfnElementBytes)});
    };
    // The X panel and the H block as blocks of tm x t, chunk after chunk: each block is
    // contiguous, so a MATMUL_TILE's A is one move that waits for its own block only.
    add(Buffer::Panel, 1, ceil_div(f.k, t) * tm, t, f.x);
    add(Buffer::Hidden, 1, ceil_div(f.hidden, t) * tm, t, f.y);
    // Each W1 and W2 block is used by one MATMUL_TILE: two slots, alternating block by block.
    add(Buffer::Strip, 2, t, t, f.w1);
    add(Buffer::Out, 2, tm, t, f.y);
    add_fabric_slots(plan, tm, t, t, f.x, f.w1, f.y, {kFfnElementBytes, kFfnElementBytes, kFfnElementBytes});
    if (const uint64_t width = f.bias_width())
        for (Buffer b : {Buffer::Bias3, Buffer::Bias2, Buffer::Bias1}) add(b, 1, 1, width, f.b1 ? *f.b1 : *f.b2);
    return plan;
}

void ffn_task_traffic(const FfnOperands& f, TileShape tile, const Task& task, uint64_t& read, uint64_t& write) {
    const TaskBox b = box_of(f, tile, task);
    const uint64_t rows = b.r1 - b.r0, cols = b.c1 - b.c0, row_tiles = task.r1 - task.r0;
    // X's rows once; W1 whole and W2's columns once per row block; each bias once per task.
    read = kFfnElementBytes * (rows * f.k + row_tiles * (f.k * f.hidden + f.hidden * cols) +
                                   (f.b1 ? f.hidden : 0) + (f.b2 ? cols : 0));
    write = kFfnElementBytes * rows * cols;
}

std::vector<FfnRead> ffn_task_reads(const FfnOperands& f, TileShape tile, const Task& task) {
    constexpr uint64_t kAll = ~uint64_t(0);
    const TaskBox b = box_of(f, tile, task);
    std::vector<FfnRead> reads{{f.x, b.r0, b.r1, 0, kAll}, {f.w1, 0, kAll, 0, kAll}, {f.w2, 0, kAll, b.c0, b.c1}};
    for (const auto& bias : {f.b1, f.b2})
        if (bias) reads.push_back({*bias, 0, kAll, 0, kAll});
    return reads;
}

void add_ffn_op_counts(const FfnOperands& f, TileShape tile, const Task& task, uint64_t (&by_kind)[6]) {
    const uint64_t t = tile.tn, rt = task.r1 - task.r0, strips = task.c1 - task.c0;
    const uint64_t ks = ceil_div(f.k, t), hs = ceil_div(f.hidden, t);
    const uint64_t biases = (f.b1 ? 1 : 0) + (f.b2 ? 1 : 0);
    const uint64_t tiles1 = hs * ks, tiles2 = strips * hs;  // MATMUL_TILEs per row block, per phase
    // Per row block: its X blocks and every weight block in; per MATMUL_TILE four moves (A and
    // B to L2 and L1); per C tile two moves out (to L3.hidden, or to L3.out and a STORE).
    by_kind[int(DfxOpKind::Load)] += biases + rt * (ks + tiles1 + tiles2);
    by_kind[int(DfxOpKind::Move)] += 2 * biases + rt * (4 * (tiles1 + tiles2) + 2 * (hs + strips));
    by_kind[int(DfxOpKind::Store)] += rt * strips;
    by_kind[int(DfxOpKind::Matmul)] += rt * (tiles1 + tiles2);
    by_kind[int(DfxOpKind::Drain)] += rt * (hs + strips);
}

void ffn_compute(const FfnOperands& f, TileShape tile, const Task& task, uint32_t fabric_rows, uint32_t fabric_cols,
                 uint64_t& macs, uint64_t& cycles) {
    const TaskBox b = box_of(f, tile, task);
    const uint64_t rows = b.r1 - b.r0, cols = b.c1 - b.c0;
    macs += rows * f.hidden * f.k + rows * cols * f.hidden;
    const uint64_t row_blocks = fabric_blocks(f.m, tile.tm, task.r0, task.r1, fabric_rows);
    cycles += row_blocks * (fabric_blocks(f.hidden, tile.tn, 0, tile_count(f.hidden, tile.tn), fabric_cols) * f.k +
                            fabric_blocks(f.n, tile.tn, task.c0, task.c1, fabric_cols) * f.hidden);
}

void expand_ffn_task(const FfnOperands& f, TileShape tile, const Task& task, OpEmitter& emit) {
    const uint32_t tm = tile.tm, t = tile.tn;
    const TaskBox box = box_of(f, tile, task);
    const uint64_t ks = tile_count(f.k, t), hs = tile_count(f.hidden, t);
    const BufferRef bias3{Buffer::Bias3, 0, 0}, bias2{Buffer::Bias2, 0, 0}, bias1{Buffer::Bias1, 0, 0};
    const uint64_t b2_at = f.b2_offset();
    // The biases once per task: b1 whole, then b2's columns of the task, in one row.
    if (f.b1) {
        emit.load(*f.b1, 0, 0, 1, f.hidden, bias3);
        emit.move(*f.b1, 0, 0, 1, f.hidden, bias3, bias2);
        emit.move(*f.b1, 0, 0, 1, f.hidden, bias2, bias1);
    }
    if (f.b2) {
        const uint64_t cols = box.c1 - box.c0;
        emit.load(*f.b2, 0, box.c0, 1, cols, {Buffer::Bias3, 0, b2_at});
        emit.move(*f.b2, 0, box.c0, 1, cols, {Buffer::Bias3, 0, b2_at}, {Buffer::Bias2, 0, b2_at});
        emit.move(*f.b2, 0, box.c0, 1, cols, {Buffer::Bias2, 0, b2_at}, {Buffer::Bias1, 0, b2_at});
    }
    // Slots alternate: weight blocks in L3 and the L2 / L1 chunks per MATMUL_TILE, C tiles per
    // drain, Y strips per store.
    uint32_t block = 0, chunk = 0, c_tile = 0, strip = 0;
    // A MATMUL_TILE of chunk Q: A from `a3` (tensor a, region (I, Q)), B block (Q, J) of `w`
    // loaded from DRAM into a streamed slot.
    const auto step = [&](uint32_t a, BufferRef a3, uint32_t w, Span1 I, Span1 J, Span1 Q, bool first) {
        const BufferRef w3{Buffer::Strip, block++ % 2, 0};
        const uint32_t cs = chunk++ % 2;
        const BufferRef a2{Buffer::A2, cs, 0}, w2{Buffer::B2, cs, 0}, a1{Buffer::A1, cs, 0}, w1{Buffer::B1, cs, 0};
        emit.load(w, Q.first, J.first, Q.count, J.count, w3);
        emit.move(a, I.first, Q.first, I.count, Q.count, a3, a2);
        emit.move(w, Q.first, J.first, Q.count, J.count, w3, w2);
        emit.move(a, I.first, Q.first, I.count, Q.count, a2, a1);
        emit.move(w, Q.first, J.first, Q.count, J.count, w2, w1);
        emit.matmul(a1, w1, I, J, Q, !first);
    };
    for (uint32_t i = task.r0; i < task.r1; ++i) {
        const Span1 I = tile_span(f.m, tm, i);
        // H block = act(X rows @ W1 + b1), strip by strip of t hidden columns; the X panel's
        // blocks come in with the first strip. H's moves name Y, the tensor the kernel makes.
        for (uint32_t j = 0; j < hs; ++j) {
            const Span1 J = tile_span(f.hidden, t, j);
            for (uint32_t q = 0; q < ks; ++q) {
                const Span1 Q = tile_span(f.k, t, q);
                const BufferRef panel{Buffer::Panel, 0, uint64_t(q) * tm * t};
                if (j == 0) emit.load(f.x, I.first, Q.first, I.count, Q.count, panel);
                step(f.x, panel, f.w1, I, J, Q, q == 0);
            }
            const uint32_t fs = c_tile++ % 2;
            const BufferRef c1{Buffer::C1, fs, 0}, c2{Buffer::C2, fs, 0};
            emit.drain(c1, f.b1.has_value(), {Buffer::Bias1, 0, J.first}, I, J, f.activation);
            emit.move(f.y, I.first, J.first, I.count, J.count, c1, c2);
            emit.move(f.y, I.first, J.first, I.count, J.count, c2, {Buffer::Hidden, 0, uint64_t(j) * tm * t});
        }
        // Y rows = H block @ W2 + b2, strip by strip of the task's Y columns.
        for (uint32_t s = task.c0; s < task.c1; ++s) {
            const Span1 J = tile_span(f.n, t, s);
            for (uint32_t q = 0; q < hs; ++q) {
                const Span1 Q = tile_span(f.hidden, t, q);
                step(f.y, {Buffer::Hidden, 0, uint64_t(q) * tm * t}, f.w2, I, J, Q, q == 0);
            }
            const uint32_t fs = c_tile++ % 2;
            const BufferRef c1{Buffer::C1, fs, 0}, c2{Buffer::C2, fs, 0}, out{Buffer::Out, strip++ % 2, 0};
            emit.drain(c1, f.b2.has_value(), {Buffer::Bias1, 0, b2_at + (J.first - box.c0)}, I, J, Activation::None);
            emit.move(f.y, I.first, J.first, I.count, J.count, c1, c2);
            emit.move(f.y, I.first, J.first, I.count, J.count, c2, out);
            emit.store(f.y, I.first, J.first, I.count, J.count, out);
        }
    }
}

bool ffn_tile_fits(const hw::Config& config, const FfnOperands& f, uint64_t tm, uint64_t t) {
    const std::vector<BufferSpec> plan = plan_ffn_buffers(f, {uint32_t(tm), uint32_t(t), uint32_t(t), 0});
    for (hw::Level level : {hw::Level::L3, hw::Level::L2, hw::Level::L1})
        if (level_bytes(plan, level) > level_capacity(config, level)) return false;
    return true;
}

namespace {

/// Candidates replayed at most, and the most DFX ops they may have together (the first is
/// always replayed).
constexpr size_t kReplayed = 4;
constexpr uint64_t kReplayOps = 2000000;

/// The candidate of tile [tm, t, t], a task per row block, with its closed-form DRAM bytes and ops.
TilingChoice ffn_candidate(const FfnOperands& f, uint64_t tm, uint64_t t) {
    TilingChoice c;
    c.tile = {uint32_t(tm), uint32_t(t), uint32_t(t), 0};
    c.task_rows = 1;
    c.task_cols = tile_count(f.n, uint32_t(t));
    const uint64_t tasks = ceil_div(f.m, tm);
    c.dram_bytes = kFfnElementBytes * (f.m * f.k + tasks * (f.k * f.hidden + f.hidden * f.n +
                                                                (f.b1 ? f.hidden : 0) + (f.b2 ? f.n : 0)) +
                                           f.m * f.n);
    uint64_t by_kind[6] = {0, 0, 0, 0, 0, 0};
    for (uint64_t r = 0; r < tasks; ++r) {
        const Task task{0, uint32_t(r), uint32_t(r + 1), 0, c.task_cols, {}, 0};
        add_ffn_op_counts(f, c.tile, task, by_kind);
    }
    for (uint64_t n : by_kind) c.ops += n;
    return c;
}

}  // namespace

TilingChoice choose_ffn_tiling(const hw::Config& config, const Graph& graph, uint32_t op) {
    const FfnOperands f = ffn_operands(graph, op);
    // Tile sides double from the fabric's up to the dimension; t (the fabric tile's columns and
    // the K chunk of both matmuls) is at most Y's columns and the longest reduction.
    const uint64_t t_max = std::min(f.n, std::max(f.k, f.hidden));
    std::vector<TilingChoice> candidates;
    for (uint64_t tm = config.fabric.rows;; tm *= 2) {
        const uint64_t rows = std::min(tm, f.m);
        for (uint64_t t = config.fabric.cols;; t *= 2) {
            const uint64_t cols = std::min(t, t_max);
            if (cols <= kMaxTileSide && rows <= kMaxTileSide && ffn_tile_fits(config, f, rows, cols))
                candidates.push_back(ffn_candidate(f, rows, cols));
            if (cols >= t_max) break;
        }
        if (rows >= f.m) break;
    }
    if (candidates.empty()) {
        const uint64_t rows = std::min<uint64_t>(config.fabric.rows, f.m), t = std::min<uint64_t>(config.fabric.cols, t_max);
        const std::vector<BufferSpec> plan = plan_ffn_buffers(f, {uint32_t(rows), uint32_t(t), uint32_t(t), 0});
        std::ostringstream msg;
        msg << "op '" << graph.ops()[op].name << "' (ffn): a row block of " << rows << " rows (its X panel, its "
            << rows << " x " << f.hidden << " H block and the streamed blocks) needs " << level_bytes(plan, hw::Level::L3)
            << " bytes of L3 per compute tile, " << level_bytes(plan, hw::Level::L2) << " of L2 and "
            << level_bytes(plan, hw::Level::L1) << " of L1; config '" << config.name << "' has "
            << level_capacity(config, hw::Level::L3) << ", " << level_capacity(config, hw::Level::L2) << " and "
            << level_capacity(config, hw::Level::L1);
        throw CompileError(msg.str());
    }
    // Fewest DRAM bytes (the biggest row blocks) first, then the fewest ops (the widest tiles).
    std::sort(candidates.begin(), candidates.end(), [](const TilingChoice& a, const TilingChoice& b) {
        return a.dram_bytes != b.dram_bytes ? a.dram_bytes < b.dram_bytes : a.ops < b.ops;
    });
    uint64_t ops = 0;
    size_t replayed = 0;
    for (TilingChoice& c : candidates) {
        if (replayed == kReplayed || (replayed > 0 && ops + c.ops > kReplayOps)) break;
        c.cycles = replay_tiling(config, graph, op, Dataflow::OutputStationary, c);
        ops += c.ops;
        ++replayed;
    }
    // The fastest replay; within 1 % of it, the least DRAM traffic, then the fewest ops.
    double fastest = candidates[0].cycles;
    for (size_t i = 1; i < replayed; ++i) fastest = std::min(fastest, candidates[i].cycles);
    for (size_t i = 0; i < replayed; ++i)
        if (candidates[i].cycles <= fastest * 1.01) return candidates[i];
    return candidates[0];
}

namespace {

/// A matmul the pass can take apart: one row-major matrix product on the fabric, B a [K, N]
/// matrix, a bias of [N] at most (a fused `matmul` without a drain scale or residual, a MatMul
/// with one B matrix, a Gemm without transposes or scales).
std::optional<MatmulOperands> plain_matmul(const Graph& graph, uint32_t op) {
    const Op& o = graph.ops()[op];
    if (o.kind != "matmul" && o.kind != "MatMul" && o.kind != "Gemm") return std::nullopt;
    const MatmulOperands mm = matmul_operands(graph, op);
    if (mm.batch != 1 || mm.trans_a || mm.trans_b || mm.alpha != 1.0f || mm.beta != 1.0f || mm.conv) return std::nullopt;
    if (mm.scale || mm.residual) return std::nullopt;  // the ffn kernel's drains have no such stages
    for (DType type : {mm.a_type, mm.b_type, mm.c_type, mm.bias_type})  // an ffn kernel is float32 only
        if (type != DType::Float32) return std::nullopt;
    if (graph.tensor(mm.b).shape.size() != 2) return std::nullopt;
    return mm;
}

/// What the pair's tilings depend on: the two ops' kinds and drain activations, their operands'
/// shapes, dtypes and roles. A model's layers repeat the same pair on other tensors: it is
/// tiled once per signature.
std::string pair_signature(const Graph& graph, uint32_t first, uint32_t second, const MatmulOperands& a,
                           const MatmulOperands& b) {
    std::ostringstream s;
    for (const auto& [op, mm] : {std::pair<uint32_t, const MatmulOperands*>{first, &a}, {second, &b}}) {
        s << graph.ops()[op].kind << ' ' << int(mm->activation) << " (";
        for (uint32_t t : graph.ops()[op].inputs) {
            if (t == kNoTensor) {
                s << "none; ";
                continue;
            }
            const Tensor& x = graph.tensor(t);
            for (uint64_t d : x.shape) s << d << ' ';
            s << int(x.dtype) << ' ' << (x.role ? int(*x.role) : -1) << "; ";
        }
        s << ") ";
    }
    return s.str();
}

/// The ffn op replacing `first` (-> H) and `second` (H -> Y).
Op ffn_op(const Graph& graph, uint32_t first, uint32_t second, const MatmulOperands& a, const MatmulOperands& b) {
    const Op& o1 = graph.ops()[first];
    const Op& o2 = graph.ops()[second];
    Op op;
    op.name = o2.name;
    op.kind = "ffn";
    op.inputs = {a.a, a.b, b.b, a.bias.value_or(kNoTensor), b.bias.value_or(kNoTensor)};
    while (op.inputs.back() == kNoTensor) op.inputs.pop_back();
    op.outputs = {b.c};
    if (a.activation != Activation::None) op.attributes["activation"] = std::string(to_string(a.activation));
    // The first matmul and what each had absorbed already (an epilogue pass's bias and
    // activation); the second is the op itself (its name).
    op.fused_with.push_back(o1.name);
    for (const Op* o : {&o1, &o2}) op.fused_with.insert(op.fused_with.end(), o->fused_with.begin(), o->fused_with.end());
    return op;
}

/// The graph with the ops of `pairs` (second -> first) replaced by their ffn ops.
Graph with_ffn_ops(const Graph& graph, const std::vector<std::pair<uint32_t, uint32_t>>& pairs,
                   const std::vector<Op>& fused) {
    return rewrite_ops(
        graph,
        [&](Graph&, const Op& op, std::vector<Op>& ops) {
            const uint32_t index = uint32_t(&op - graph.ops().data());
            for (size_t p = 0; p < pairs.size(); ++p) {
                if (pairs[p].first == index) return true;  // absorbed: its ffn op comes at the second's place
                if (pairs[p].second == index) {
                    ops.push_back(fused[p]);
                    return true;
                }
            }
            return false;
        },
        "fuse-ffn");
}

}  // namespace

Graph fuse_ffn(const Graph& graph, const hw::Config& config, Dataflow dataflow, std::vector<std::string>* notes) {
    const uint32_t tensors = uint32_t(graph.tensors().size());
    std::vector<uint32_t> readers(tensors, 0), producer(tensors, kNoTensor);
    for (uint32_t i = 0; i < graph.ops().size(); ++i) {
        for (uint32_t t : graph.ops()[i].inputs)
            if (t != kNoTensor) ++readers[t];
        for (uint32_t t : graph.ops()[i].outputs)
            if (t != kNoTensor) producer[t] = i;
    }
    std::vector<std::pair<uint32_t, uint32_t>> pairs;  // (first, second)
    std::vector<Op> fused;
    std::vector<bool> taken(graph.ops().size(), false);  // in a pair already
    struct Decision {
        std::string refusal;  ///< why the fused kernel does not tile ("" when it does)
        TilingChoice together, one, two;
    };
    std::map<std::string, Decision> decided;  // by pair_signature
    for (uint32_t second = 0; second < graph.ops().size(); ++second) {
        const std::optional<MatmulOperands> b = plain_matmul(graph, second);
        if (!b || b->activation != Activation::None) continue;
        const uint32_t h = b->a, first = producer[h];
        if (first == kNoTensor || taken[first] || readers[h] != 1 || graph.tensor(h).role == TensorRole::Output)
            continue;
        const std::optional<MatmulOperands> a = plain_matmul(graph, first);
        if (!a || a->c != h || a->n != b->k || a->m != b->m) continue;
        const Op op = ffn_op(graph, first, second, *a, *b);
        const std::string pair = "'" + graph.ops()[first].name + "' and '" + graph.ops()[second].name + "'";
        const std::string signature = pair_signature(graph, first, second, *a, *b);
        auto known = decided.find(signature);
        if (known == decided.end()) {
            // The fused kernel, tiled in the graph it would be part of, against the two matmuls'.
            const Graph trial = with_ffn_ops(graph, {{first, second}}, {op});
            Decision d;
            try {
                d.together = choose_ffn_tiling(config, trial, *trial.find_op(op.name));
            } catch (const CompileError& e) {
                d.refusal = e.what();
            }
            if (d.refusal.empty()) {
                d.one = choose_op_tiling(config, graph, first, dataflow).second;
                d.two = choose_op_tiling(config, graph, second, dataflow).second;
            }
            known = decided.emplace(signature, d).first;
        }
        const Decision& d = known->second;
        if (!d.refusal.empty()) {
            if (notes) notes->push_back("fuse-ffn: left " + pair + " unfused: " + d.refusal);
            continue;
        }
        const TilingChoice& together = d.together;
        const TilingChoice &one = d.one, &two = d.two;
        const uint64_t apart_bytes = one.dram_bytes + two.dram_bytes;
        const double apart_cycles = one.cycles + two.cycles;
        if (together.dram_bytes >= apart_bytes || together.cycles > apart_cycles) {
            if (notes) {
                std::ostringstream msg;
                msg << "fuse-ffn: left " << pair << " unfused: fused (row blocks of " << together.tile.tm << ") "
                    << together.dram_bytes << " DRAM bytes, estimated " << uint64_t(together.cycles) << " cycles; apart "
                    << apart_bytes << " bytes, " << uint64_t(apart_cycles) << " cycles";
                notes->push_back(msg.str());
            }
            continue;
        }
        pairs.push_back({first, second});
        fused.push_back(op);
        taken[first] = taken[second] = true;
    }
    return pairs.empty() ? graph : with_ffn_ops(graph, pairs, fused);
}

}  // namespace kpu::compiler
