#include "compiler/flash_attention.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "compiler/compile_error.h"
#include "compiler/ops/op_schema.h"
#include "hardware/fabric_timing.h"
#include "hardware/vector_timing.h"

namespace kpu::compiler {

/// Bytes of one element of every tensor of a fused attention: float32 only (its fusion pass declines
/// other types).
constexpr uint64_t kFlashElementBytes = dtype_bytes(DType::Float32);

namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/// The operands, or why there are none (`problem` set). `op` is an Attention or a flash_attention.
FlashOperands operands(const Graph& g, const Op& op, std::string& problem) {
    FlashOperands f;
    const OpSchema& schema = schema_of(op);
    const auto attr = [&](const char* name) { return attribute_of(op, schema, name); };
    for (uint32_t t : op.inputs)
        if (t != kNoTensor && g.tensor(t).dtype != DType::Float32) {
            problem = "input '" + g.tensor(t).name + "' is " + to_string(g.tensor(t).dtype) + " (only float32 fuses)";
            return f;
        }
    if (attr_number(*attr("softcap")) != 0) {
        problem = "softcap = " + attr_string(*attr("softcap")) + " not yet supported";
        return f;
    }
    f.q = op.inputs.at(0), f.k = op.inputs.at(1), f.v = op.inputs.at(2), f.y = op.outputs.at(0);
    const std::vector<uint64_t>& qs = g.tensor(f.q).shape;
    const std::vector<uint64_t>& ks = g.tensor(f.k).shape;
    const std::vector<uint64_t>& vs = g.tensor(f.v).shape;
    f.four = qs.size() == 4;
    f.batch = qs[0];
    f.hq = f.four ? qs[1] : uint64_t(std::get<int64_t>(*attr("q_num_heads")));
    f.hkv = f.four ? ks[1] : uint64_t(std::get<int64_t>(*attr("kv_num_heads")));
    f.sq = qs[f.four ? 2 : 1], f.skv = ks[f.four ? 2 : 1];
    f.e = f.four ? qs[3] : qs[2] / f.hq;
    f.ev = f.four ? vs[3] : vs[2] / f.hkv;
    f.scale = float(attr("scale") ? attr_number(*attr("scale")) : 1 / std::sqrt(double(f.e)));
    f.causal = std::get<int64_t>(*attr("is_causal")) != 0;
    if (f.batch * f.hq * f.sq * f.skv * f.e * f.ev == 0) {
        problem = "an empty tensor not yet supported";
        return f;
    }
    if (op.inputs.size() <= 3 || op.inputs[3] == kNoTensor) return f;
    f.mask = op.inputs[3];
    const Tensor& mask = g.tensor(*f.mask);
    if (mask.elements() == 1) {
        f.mask_broadcast = hw::Broadcast::Scalar;
        return f;
    }
    std::vector<uint64_t> m(4 - std::min<size_t>(4, mask.shape.size()), 1);  // aligned to [B, Hq, Sq, Skv]
    m.insert(m.end(), mask.shape.begin(), mask.shape.end());
    if (m[3] != f.skv) {
        problem = "input 'attn_mask' of shape " + shape_string(mask.shape) + " broadcast along the keys (" +
                  std::to_string(f.skv) + ") not yet supported";
        return f;
    }
    // The mask's 2D view: a row per index of its dims before the last.
    f.mask_query_rows = m[2] == 1 ? 0 : 1;
    f.mask_head_rows = m[1] == 1 ? 0 : m[2];
    f.mask_batch_rows = m[0] == 1 ? 0 : m[1] * m[2];
    f.mask_broadcast = m[2] == 1 ? hw::Broadcast::Row : hw::Broadcast::None;
    return f;
}

// Where a task's data lies in its buffers (plan_flash_buffers): L3 Panel Q; Strip K rows then
// V rows (pitch max(E, Ev)); Bias3 the mask block; Out O. L2 A2 Q; B2 K^T (E rows) then V
// (pitch max(Bc, Ev)); C2 S / P, then P V, then the mask block (pitch max(Bc, Ev)); Bias2 O
// (pitch Ev), then the statistics (3 Br values), then a scalar mask. L1 A1 Q; B1 as B2; C1 the
// drained S, then P V; Bias1 P (pitch Bc).
struct Layout {
    uint64_t br, bc, p3, p2;
    uint64_t v3() const { return bc * p3; }       ///< V in a Strip slot
    uint64_t v2(uint64_t e) const { return e * p2; }  ///< V in a B2 / B1 slot
    uint64_t pv() const { return br * p2; }       ///< P V in a C2 / C1 slot
    uint64_t mask2() const { return 2 * br * p2; }  ///< the mask block in a C2 slot
    uint64_t state(uint64_t ev) const { return br * ev; }  ///< the statistics in Bias2
};

Layout layout_of(const FlashOperands& f, TileShape tile) {
    return {tile.tm, tile.tn, std::max(f.e, f.ev), std::max<uint64_t>(tile.tn, f.ev)};
}

/// Visible key blocks of a task over query rows [q0, q1): kv_end in blocks of Bc.
uint64_t key_blocks(const FlashOperands& f, TileShape tile, uint64_t q1) { return ceil_div(f.kv_end(q1, tile.tn), tile.tn); }

struct Rows {
    uint64_t q0, q1;
};
Rows task_rows(const FlashOperands& f, TileShape tile, const Task& task) {
    return {uint64_t(task.r0) * tile.tm, std::min(f.sq, uint64_t(task.r1) * tile.tm)};
}

}  // namespace

bool is_flash_op(const Op& op) { return op.kind == "flash_attention"; }

std::string flash_problem(const Graph& graph, const Op& op) { return problem_of(graph, op, operands); }

FlashOperands flash_operands(const Graph& graph, uint32_t index) { return operands_of(graph, index, operands); }

std::vector<BufferSpec> plan_flash_buffers(const FlashOperands& f, TileShape tile) {
    std::vector<BufferSpec> plan;
    const Layout l = layout_of(f, tile);
    const auto add = [&](Buffer buffer, uint32_t slots, uint64_t elements, uint64_t pitch, uint32_t tensor) {
        plan.push_back({buffer, level_of(buffer), slots, elements * kFlashElementBytes, uint32_t(pitch), tensor, uint32_t(kFlashElementBytes)});
    };
    const uint64_t br = l.br, bc = l.bc;
    add(Buffer::Panel, 1, br * f.e, f.e, f.q);
    add(Buffer::Strip, 2, 2 * bc * l.p3, l.p3, f.k);
    add(Buffer::Out, 1, br * f.ev, f.ev, f.y);
    add(Buffer::A2, 1, br * f.e, f.e, f.q);
    add(Buffer::B2, 2, (f.e + bc) * l.p2, l.p2, f.k);
    const bool block_mask = f.mask && f.mask_broadcast != hw::Broadcast::Scalar;
    const uint64_t mask_rows = f.mask_broadcast == hw::Broadcast::None ? br : 1;
    add(Buffer::C2, 2, (2 * br + (block_mask ? mask_rows : 0)) * l.p2, l.p2, f.y);
    add(Buffer::Bias2, 1, br * f.ev + 3 * br + (f.mask ? 1 : 0), f.ev, f.y);
    if (f.mask) add(Buffer::Bias3, 2, block_mask ? mask_rows * bc : 1, block_mask ? bc : 1, *f.mask);
    add(Buffer::A1, 1, br * f.e, f.e, f.q);
    add(Buffer::B1, 2, (f.e + bc) * l.p2, l.p2, f.k);
    add(Buffer::C1, 2, 2 * br * l.p2, l.p2, f.y);
    add(Buffer::Bias1, 2, br * bc, bc, f.y);
    return plan;
}

void flash_task_traffic(const FlashOperands& f, TileShape tile, const Task& task, uint64_t& read, uint64_t& write) {
    const Rows r = task_rows(f, tile, task);
    const uint64_t rows = r.q1 - r.q0, keys = f.kv_end(r.q1, tile.tn);
    const uint64_t mask = !f.mask ? 0
                          : f.mask_broadcast == hw::Broadcast::Scalar ? 1
                                                                       : f.mask_elements(rows, keys);
    read = kFlashElementBytes * (rows * f.e + keys * (f.e + f.ev) + mask);
    write = kFlashElementBytes * rows * f.ev;
}

void flash_task_work(const FlashOperands& f, TileShape tile, const Task& task, uint32_t fabric_rows,
                     uint32_t fabric_cols, uint64_t& macs, uint64_t& compute_cycles) {
    const Rows r = task_rows(f, tile, task);
    const uint64_t rows = r.q1 - r.q0, keys = f.kv_end(r.q1, tile.tn), blocks = key_blocks(f, tile, r.q1);
    macs = rows * keys * (f.e + f.ev);
    compute_cycles = 0;
    for (uint64_t j = 0; j < blocks; ++j) {
        const uint64_t cols = std::min<uint64_t>(tile.tn, f.skv - j * tile.tn);
        compute_cycles += ceil_div(rows, fabric_rows) * (ceil_div(cols, fabric_cols) * f.e + ceil_div(f.ev, fabric_cols) * cols);
    }
}

void flash_task_ops(const FlashOperands& f, TileShape tile, const Task& task, uint64_t by_kind[6]) {
    const Rows r = task_rows(f, tile, task);
    const uint64_t blocks = key_blocks(f, tile, r.q1);
    const bool scalar = f.mask && f.mask_broadcast == hw::Broadcast::Scalar, block_mask = f.mask && !scalar;
    // Per task: Q in (LOAD, 2 MOVEs), a scalar mask (LOAD, MOVE), the finish (VECTOR), O out
    // (MOVE, STORE). Per key block: K and V in (2 LOADs, 4 MOVEs), the mask block (LOAD, MOVE),
    // S = Q K^T (MATMUL_TILE, DRAIN, MOVE), the step (VECTOR), P to L1 (MOVE), P V (MATMUL_TILE,
    // DRAIN, MOVE), the accumulation (VECTOR).
    by_kind[int(DfxOpKind::Load)] += 1 + scalar + blocks * (2 + block_mask);
    by_kind[int(DfxOpKind::Move)] += 3 + scalar + blocks * (7 + block_mask);
    by_kind[int(DfxOpKind::Store)] += 1;
    by_kind[int(DfxOpKind::Matmul)] += 2 * blocks;
    by_kind[int(DfxOpKind::Drain)] += 2 * blocks;
    by_kind[int(DfxOpKind::Vector)] += 1 + 2 * blocks;
}

std::vector<FlashRegion> flash_task_reads(const FlashOperands& f, TileShape tile, const Task& task) {
    const Rows r = task_rows(f, tile, task);
    const uint64_t t = task.batch, keys = f.kv_end(r.q1, tile.tn), kv = f.kv_row(t);
    std::vector<FlashRegion> reads{{f.q, f.q_row(t) + r.q0, f.q_row(t) + r.q1, f.q_col(t), f.q_col(t) + f.e},
                                   {f.k, kv, kv + keys, f.k_col(t), f.k_col(t) + f.e},
                                   {f.v, kv, kv + keys, f.v_col(t), f.v_col(t) + f.ev}};
    if (f.mask) {
        if (f.mask_broadcast == hw::Broadcast::Scalar) {
            reads.push_back({*f.mask, 0, 1, 0, 1});
        } else {
            const uint64_t first = f.mask_row(t, r.q0);
            const uint64_t rows = f.mask_broadcast == hw::Broadcast::None ? r.q1 - r.q0 : 1;
            reads.push_back({*f.mask, first, first + rows, 0, keys});
        }
    }
    return reads;
}

FlashRegion flash_task_writes(const FlashOperands& f, TileShape tile, const Task& task) {
    const Rows r = task_rows(f, tile, task);
    const uint64_t t = task.batch;
    return {f.y, f.q_row(t) + r.q0, f.q_row(t) + r.q1, f.y_col(t), f.y_col(t) + f.ev};
}

void expand_flash_task(const FlashOperands& f, TileShape tile, const Task& task, FlashOpSink& sink) {
    const Rows r = task_rows(f, tile, task);
    const Layout l = layout_of(f, tile);
    const uint64_t t = task.batch, rows = r.q1 - r.q0, blocks = key_blocks(f, tile, r.q1);
    const uint64_t qr = f.q_row(t) + r.q0, kv = f.kv_row(t);
    const BufferRef q3{Buffer::Panel, 0, 0}, q2{Buffer::A2, 0, 0}, q1{Buffer::A1, 0, 0};
    const BufferRef o2{Buffer::Bias2, 0, 0}, state{Buffer::Bias2, 0, l.state(f.ev)};
    const BufferRef scalar2{Buffer::Bias2, 0, l.state(f.ev) + 3 * l.br};
    const bool scalar = f.mask && f.mask_broadcast == hw::Broadcast::Scalar;
    // The Q block: in once, kept in L1 as the first operand of every S_j.
    sink.load(f.q, qr, f.q_col(t), rows, f.e, q3);
    sink.move(f.q, qr, f.q_col(t), rows, f.e, q3, q2, false);
    sink.move(f.q, qr, f.q_col(t), rows, f.e, q2, q1, false);
    if (scalar) {
        sink.load(*f.mask, 0, 0, 1, 1, {Buffer::Bias3, 0, 0});
        sink.move(*f.mask, 0, 0, 1, 1, {Buffer::Bias3, 0, 0}, scalar2, false);
    }
    const uint32_t m = uint32_t(rows);
    for (uint64_t j = 0; j < blocks; ++j) {
        const uint64_t k0 = j * tile.tn, cols = std::min<uint64_t>(tile.tn, f.skv - k0);
        const uint32_t s = uint32_t(j % 2), n = uint32_t(cols);
        const BufferRef k3{Buffer::Strip, s, 0}, v3{Buffer::Strip, s, l.v3()};
        const BufferRef k2{Buffer::B2, s, 0}, v2{Buffer::B2, s, l.v2(f.e)};
        const BufferRef k1{Buffer::B1, s, 0}, v1{Buffer::B1, s, l.v2(f.e)};
        const BufferRef s2{Buffer::C2, s, 0}, pv2{Buffer::C2, s, l.pv()}, mask2{Buffer::C2, s, l.mask2()};
        const BufferRef s1{Buffer::C1, s, 0}, pv1{Buffer::C1, s, l.pv()}, p1{Buffer::Bias1, s, 0};
        // S_j = Q K_j^T: K_j comes in as stored and is transposed on its way to L2.
        sink.load(f.k, kv + k0, f.k_col(t), cols, f.e, k3);
        sink.load(f.v, kv + k0, f.v_col(t), cols, f.ev, v3);
        sink.move(f.k, kv + k0, f.k_col(t), cols, f.e, k3, k2, true);
        sink.move(f.k, kv + k0, f.k_col(t), f.e, cols, k2, k1, false);
        sink.matmul_drain(q1, k1, s1, m, n, uint32_t(f.e));
        sink.move(f.y, qr, k0, rows, cols, s1, s2, false);
        FlashVector step;
        step.function = hw::VectorFunction::OnlineSoftmax;
        step.rows = m, step.cols = n, step.query = r.q0, step.key = k0, step.first = j == 0;
        step.a = s2, step.y = s2, step.state = state;
        if (f.mask) {
            step.has_mask = true;
            step.mask_cols = scalar ? 1 : n;
            step.mask_rows = f.mask_broadcast == hw::Broadcast::None ? m : 1;
            step.mask = scalar ? scalar2 : mask2;
            if (!scalar) {
                const BufferRef mask3{Buffer::Bias3, s, 0};
                const uint64_t mr = f.mask_row(t, r.q0);
                sink.load(*f.mask, mr, k0, step.mask_rows, cols, mask3);
                sink.move(*f.mask, mr, k0, step.mask_rows, cols, mask3, mask2, false);
            }
        }
        sink.vector(step);
        // P_j V_j, then O = c O + P_j V_j.
        sink.move(f.y, qr, k0, rows, cols, s2, p1, false);
        sink.move(f.v, kv + k0, f.v_col(t), cols, f.ev, v3, v2, false);
        sink.move(f.v, kv + k0, f.v_col(t), cols, f.ev, v2, v1, false);
        sink.matmul_drain(p1, v1, pv1, m, uint32_t(f.ev), n);
        sink.move(f.y, qr, f.y_col(t), rows, f.ev, pv1, pv2, false);
        FlashVector acc;
        acc.function = hw::VectorFunction::OnlineAccumulate;
        acc.rows = m, acc.cols = uint32_t(f.ev), acc.query = r.q0, acc.key = k0, acc.first = j == 0;
        acc.a = pv2, acc.y = o2, acc.state = state;
        sink.vector(acc);
    }
    FlashVector finish;
    finish.function = hw::VectorFunction::OnlineFinish;
    finish.rows = m, finish.cols = uint32_t(f.ev), finish.query = r.q0;
    finish.a = o2, finish.y = o2, finish.state = state;
    sink.vector(finish);
    const BufferRef o3{Buffer::Out, 0, 0};
    sink.move(f.y, qr, f.y_col(t), rows, f.ev, o2, o3, false);
    sink.store(f.y, qr, f.y_col(t), rows, f.ev, o3);
}

hw::VectorCommand flash_vector_command(const FlashOperands& f, const DfxOp& d) {
    hw::VectorCommand c;
    c.function = d.function;
    c.rows = d.m;
    c.cols = d.n;
    c.online_first = !d.accumulate;
    if (d.function != hw::VectorFunction::OnlineSoftmax) return c;
    c.scale = f.scale;
    c.causal = f.causal;
    c.causal_offset = int64_t(d.row) - int64_t(d.col);  // the block's first query less its first key
    c.has_b = d.has_b;
    if (d.has_b) c.b.broadcast = f.mask_broadcast;
    return c;
}

// ---- tiling -----------------------------------------------------------------------------

namespace {

/// Estimated cycles of one task of `rows` queries over `blocks` key blocks: the fabric's
/// matmuls and drains and the vector engine's steps one after the other (each waits for the
/// one before), against the on-chip bytes through the task's Streamers.
double task_cycles(const FlashOperands& f, const hw::Config& config, uint64_t rows, uint64_t bc, uint64_t keys,
                   double streamer_per_cycle) {
    const uint32_t R = config.fabric.rows, C = config.fabric.cols;
    double fabric = 0, vector = 0, onchip = 0;
    hw::VectorCommand v;
    v.rows = uint32_t(rows);
    for (uint64_t k0 = 0; k0 < keys; k0 += bc) {
        const uint64_t cols = std::min(bc, keys - k0);
        hw::MatmulCommand s{}, pv{};
        s.m = pv.m = uint32_t(rows);
        s.n = uint32_t(cols), s.k = uint32_t(f.e);
        pv.n = uint32_t(f.ev), pv.k = uint32_t(cols);
        hw::DrainCommand ds{}, dpv{};
        ds.m = dpv.m = uint32_t(rows);
        ds.n = uint32_t(cols), dpv.n = uint32_t(f.ev);
        fabric += double(hw::matmul_cycles(s, R, C) + hw::matmul_cycles(pv, R, C) + hw::drain_cycles(ds, R, C) +
                         hw::drain_cycles(dpv, R, C));
        v.function = hw::VectorFunction::OnlineSoftmax, v.cols = uint32_t(cols);
        vector += double(hw::vector_cycles(v, config.vector));
        v.function = hw::VectorFunction::OnlineAccumulate, v.cols = uint32_t(f.ev);
        vector += double(hw::vector_cycles(v, config.vector));
        // Into L1: K^T, V, P; out of it: S and P V.
        onchip += double(kFlashElementBytes * (cols * (f.e + f.ev) + 2 * rows * cols + rows * f.ev));
    }
    v.function = hw::VectorFunction::OnlineFinish, v.cols = uint32_t(f.ev);
    vector += double(hw::vector_cycles(v, config.vector));
    return std::max(fabric + vector, onchip / streamer_per_cycle);
}

/// Sides to try along an extent: powers of two up to it, and the extent itself.
std::vector<uint64_t> sides(uint64_t extent) {
    std::set<uint64_t> out{extent};
    for (uint64_t s = 1; s < extent && s <= kMaxTileSide; s *= 2) out.insert(s);
    return {out.begin(), out.end()};
}

bool fits(const hw::Config& config, const FlashOperands& f, TileShape tile) {
    const std::vector<BufferSpec> plan = plan_flash_buffers(f, tile);
    for (hw::Level level : {hw::Level::L1, hw::Level::L2, hw::Level::L3})
        if (level_bytes(plan, level) > level_capacity(config, level)) return false;
    return true;
}

/// The chosen tiling, or none (`found` false) when no block fits.
TilingChoice best_tiling(const hw::Config& config, const FlashOperands& f, bool& found) {
    const hw::Derived derived = hw::derive(config);
    const double hz = config.clocks.fabric_hz, T = double(config.compute_tiles);
    const double dram_per_cycle = derived.dma_bandwidth / hz, streamer_per_cycle = derived.l2_l1_bandwidth / T / hz;
    TilingChoice best;
    found = false;
    for (uint64_t br : sides(f.sq))
        for (uint64_t bc : sides(f.skv)) {
            const TileShape tile{uint32_t(br), uint32_t(bc), uint32_t(f.e), 0};
            if (br > kMaxTileSide || bc > kMaxTileSide || f.e > kMaxTileSide || !fits(config, f, tile)) continue;
            const uint64_t row_blocks = ceil_div(f.sq, br), tasks = row_blocks * f.matrices();
            if (tasks > kMaxCTiles) continue;
            // Tasks go round-robin over the compute tiles; the busiest tile's sum against DRAM.
            std::vector<double> per_tile(std::min<uint64_t>(tasks, config.compute_tiles), 0.0);
            uint64_t dram = 0;
            std::vector<double> by_block(row_blocks);
            for (uint64_t i = 0; i < row_blocks; ++i) {
                const uint64_t q1 = std::min(f.sq, (i + 1) * br), rows = q1 - i * br;
                by_block[i] = task_cycles(f, config, rows, bc, f.kv_end(q1, bc), streamer_per_cycle);
                Task task;
                task.r0 = uint32_t(i), task.r1 = uint32_t(i + 1);
                uint64_t read = 0, write = 0;
                flash_task_traffic(f, tile, task, read, write);
                dram += (read + write) * f.matrices();
            }
            for (uint64_t n = 0; n < tasks; ++n) per_tile[n % per_tile.size()] += by_block[n % row_blocks];
            const double busiest = *std::max_element(per_tile.begin(), per_tile.end());
            const double cycles = std::max(busiest, double(dram) / dram_per_cycle);
            // Within 1 % the less DRAM traffic, then the bigger blocks (fewer ops) win.
            const bool better = !found || cycles < best.cycles * 0.99 ||
                                (cycles <= best.cycles * 1.01 &&
                                 (dram < best.dram_bytes || (dram == best.dram_bytes && br * bc > uint64_t(best.tile.tm) * best.tile.tn)));
            if (!better) continue;
            found = true;
            best.tile = tile;
            best.task_rows = 1;
            best.task_cols = uint32_t(ceil_div(f.skv, bc));
            best.cycles = cycles;
            best.dram_bytes = dram;
            best.passes = 1;
        }
    return best;
}

}  // namespace

TilingChoice choose_flash_tiling(const hw::Config& config, const Graph& graph, uint32_t op) {
    const FlashOperands f = flash_operands(graph, op);
    bool found = false;
    TilingChoice choice = best_tiling(config, f, found);
    if (!found) {
        const Op& o = graph.ops()[op];
        const std::vector<BufferSpec> plan = plan_flash_buffers(f, {1, 1, uint32_t(std::min<uint64_t>(f.e, kMaxTileSide)), 0});
        throw CompileError("op '" + o.name + "' (" + o.kind + "): one query row by one key needs " +
                           std::to_string(level_bytes(plan, hw::Level::L2)) + " bytes of L2 per compute tile but config '" +
                           config.name + "' has " + std::to_string(level_capacity(config, hw::Level::L2)));
    }
    return choice;
}

std::string flash_refusal(const Graph& graph, const Op& o, const hw::Config& config) {
    std::string problem;
    const FlashOperands f = operands(graph, o, problem);
    if (!problem.empty()) return problem;
    bool found = false;
    best_tiling(config, f, found);
    if (!found) {
        const std::vector<BufferSpec> plan = plan_flash_buffers(f, {1, 1, uint32_t(std::min<uint64_t>(f.e, kMaxTileSide)), 0});
        std::string why;
        for (hw::Level level : {hw::Level::L1, hw::Level::L2, hw::Level::L3})
            if (level_bytes(plan, level) > level_capacity(config, level) && why.empty())
                why = "one query row by one key needs " + std::to_string(level_bytes(plan, level)) + " bytes of " +
                      to_string(level) + " per compute tile but config '" + config.name + "' has " +
                      std::to_string(level_capacity(config, level));
        return why.empty() ? "no block fits config '" + config.name + "'" : why;
    }
    return "";
}

Graph fuse_attention(const Graph& graph, const hw::Config& config, bool* fused) {
    if (fused) *fused = false;
    return rewrite_ops(
        graph,
        [&](Graph& g, const Op& op, std::vector<Op>& ops) {
            if (op.kind != "Attention" || !flash_refusal(g, op, config).empty()) return false;
            if (fused) *fused = true;
            Op fused = op;
            fused.kind = "flash_attention";
            fused.fused_with = {op.name};
            ops.push_back(std::move(fused));
            return true;
        },
        "graph");
}

}  // namespace kpu::compiler
