#include "compiler/tiler.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "compiler/binder.h"
#include "compiler/copy_op.h"
#include "compiler/ffn_fusion.h"
#include "compiler/flash_attention.h"
#include "compiler/compile_error.h"
#include "compiler/generate.h"
#include "compiler/replay.h"
#include "compiler/vector_op.h"
#include "hardware/vector_timing.h"

namespace kpu::compiler {

uint64_t level_capacity(const hw::Config& config, hw::Level level) {
    switch (level) {
        case hw::Level::L3: return config.l3.capacity_bytes;
        case hw::Level::L2: return uint64_t(config.l2.count) * config.l2.capacity_bytes;
        case hw::Level::L1: return uint64_t(config.l1.count) * config.l1.capacity_bytes;
        case hw::Level::Dram: return uint64_t(config.dram.count) * config.dram.capacity_bytes;
    }
    return 0;
}

namespace {

/// The closed-form estimate ranks every candidate (its band of equals fewest ops first); the
/// first ones in that order are replayed (replay.h), at most this many, and at most this
/// many DFX ops in all.
constexpr size_t kMaxReplays = 16;
constexpr uint64_t kReplayOpBudget = 1'000'000;
/// Replayed candidates within this share of the fastest are equals: the least DRAM traffic
/// and then the fewest ops decide.
constexpr double kEqualShare = 0.01;
/// The closed form cannot tell apart candidates within this share of its best.
constexpr double kClosedFormEqualShare = 0.02;

/// The fastest replayed candidate, or among those within kEqualShare of it the least DRAM
/// traffic, then the fewest ops.
TilingChoice pick(const std::vector<TilingChoice>& candidates) {
    double fastest = INFINITY;
    for (const TilingChoice& c : candidates) fastest = std::min(fastest, c.cycles);
    std::vector<TilingChoice> equals;
    for (const TilingChoice& c : candidates)
        if (c.cycles <= fastest * (1 + kEqualShare)) equals.push_back(c);
    return *std::min_element(equals.begin(), equals.end(), [](const TilingChoice& a, const TilingChoice& b) {
        if (a.dram_bytes != b.dram_bytes) return a.dram_bytes < b.dram_bytes;
        if (a.ops != b.ops) return a.ops < b.ops;
        return a.cycles < b.cycles;
    });
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/// The distinct values of ceil(count / p) for p = 1..count: every distinct task size. In
/// O(sqrt(count)): ceil(count / p) = (count - 1) / p + 1 stays the same for p up to
/// (count - 1) / ((count - 1) / p).
std::vector<uint32_t> task_sizes(uint32_t count) {
    std::set<uint32_t> sizes{1};
    for (uint64_t p = 1, c = uint64_t(count) - 1; p <= c; p = c / (c / p) + 1) sizes.insert(uint32_t(c / p + 1));
    return {sizes.begin(), sizes.end()};
}

/// First level of `plan` that does not fit, or Dram when all fit.
hw::Level overflow(const hw::Config& config, const std::vector<BufferSpec>& plan) {
    for (hw::Level level : {hw::Level::L1, hw::Level::L2, hw::Level::L3})
        if (level_bytes(plan, level) > level_capacity(config, level)) return level;
    return hw::Level::Dram;
}

TaskExtent extent_of(const Graph& graph, uint32_t op, TileShape tile, uint32_t task_rows, uint32_t task_cols) {
    const MatmulOperands mm = matmul_operands(graph, op);
    return {std::min<uint64_t>(mm.m, uint64_t(task_rows) * tile.tm), std::min<uint64_t>(mm.n, uint64_t(task_cols) * tile.tn)};
}

/// The largest K chunk (fewest steps, rounded up to 16 elements) whose L1 and L2 buffers fit.
/// L1 and L2 hold the same staging buffers (a, b, c, bias), so one capacity bound serves both.
bool pick_tk(const hw::Config& config, const Graph& graph, uint32_t op, Dataflow dataflow, TileShape& tile,
             TaskExtent extent) {
    const MatmulOperands mm = matmul_operands(graph, op);
    const uint64_t k = mm.k;
    const uint64_t cap = std::min(level_capacity(config, hw::Level::L1), level_capacity(config, hw::Level::L2));
    auto bytes = [&](uint64_t tk) {
        tile.tk = uint32_t(tk);
        return level_bytes(plan_buffers(mm, k, dataflow, tile, extent), hw::Level::L1);
    };
    const uint64_t smallest = std::min<uint64_t>(k, 16);
    const uint64_t base = bytes(smallest);
    if (base > cap) return false;
    // a and b: 2 slots of their elements
    const uint64_t per_k = 2 * (uint64_t(tile.tm) * dtype_bytes(mm.a_type) + uint64_t(tile.tn) * dtype_bytes(mm.b_type));
    const uint64_t tk_max = smallest + (cap - base) / per_k;
    for (uint64_t steps = ceil_div(k, tk_max);; ++steps) {
        const uint64_t tk = std::min<uint64_t>(k, ceil_div(ceil_div(k, steps), 16) * 16);
        if (tk <= smallest) return bytes(smallest) <= cap;
        if (bytes(tk) <= cap) return true;
    }
}

/// Sets each candidate's cycles to its replay (replay_tiling), as far as pick() needs it: a
/// replay that passes (1 + kEqualShare) x the fastest one so far stops there, since such a
/// candidate can be neither the fastest nor one of its equals (its cycles are then some time
/// above that bound, not its replay). The candidates are independent: they are replayed side
/// by side on the host's cores, each result in its own place, and the one pick() takes is
/// the same whatever the order they finish in.
void replay_each(const hw::Config& config, const Graph& graph, uint32_t op, Dataflow dataflow,
                 std::vector<TilingChoice>& candidates) {
    const size_t n = candidates.size();
    const size_t threads = std::min<size_t>(n, std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::exception_ptr> errors(n);
    std::atomic<size_t> next{0};
    std::mutex fastest_lock;
    double fastest = INFINITY;
    const auto work = [&] {
        for (size_t i = next++; i < n; i = next++) {
            try {
                double limit;
                {
                    const std::lock_guard<std::mutex> hold(fastest_lock);
                    limit = fastest * (1 + kEqualShare);
                }
                const double cycles = replay_tiling(config, graph, op, dataflow, candidates[i], limit);
                candidates[i].cycles = cycles;
                const std::lock_guard<std::mutex> hold(fastest_lock);
                fastest = std::min(fastest, cycles);
            } catch (...) {
                errors[i] = std::current_exception();
            }
        }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
    for (const std::exception_ptr& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace

bool evaluate_tiling(const hw::Config& config, const Graph& graph, uint32_t op, Dataflow dataflow, TileShape tile,
                     uint32_t task_rows, uint32_t task_cols, TilingChoice& out, uint32_t passes) {
    const TaskExtent extent = extent_of(graph, op, tile, task_rows, task_cols);
    tile.kc = 0;
    if (!pick_tk(config, graph, op, dataflow, tile, extent)) return false;
    const MatmulOperands mm = matmul_operands(graph, op);
    const uint64_t M = mm.m, N = mm.n, K = mm.k;
    if (passes > 1 && mm.one_k_pass()) return false;  // no partial sums in C's type
    if (passes > 1) {  // K in passes of kc, a multiple of tk
        const uint64_t kc = ceil_div(ceil_div(K, passes), tile.tk) * tile.tk;
        if (kc >= K) return false;
        tile.kc = uint32_t(kc);
        passes = uint32_t(ceil_div(K, kc));
    }
    const auto plan = plan_buffers(mm, K, dataflow, tile, extent);
    if (overflow(config, plan) != hw::Level::Dram) return false;

    const bool bias = mm.bias.has_value();
    const uint64_t R = config.fabric.rows, C = config.fabric.cols, T = config.compute_tiles;
    const uint64_t Mt = ceil_div(M, tile.tm), Nt = ceil_div(N, tile.tn), ks = ceil_div(K, tile.tk);
    // A batched matmul has that task grid per C matrix.
    const uint64_t Pm = ceil_div(Mt, task_rows), Pn = ceil_div(Nt, task_cols), tasks = Pm * Pn * mm.batch;
    const hw::Derived derived = hw::derive(config);
    const double hz = config.clocks.fabric_hz;
    const double dram_per_cycle = derived.dma_bandwidth / hz;
    // The binder puts the A and the B moves on their own BlockMover, each into one L2 bank: a
    // move runs at most at one bank's ports, so a tile gets at most two of those at once.
    const double bm_move = std::min({config.block_mover.bandwidth_bytes_per_s,
                                     config.l2.bandwidth_bytes_per_s * config.l2.ports,
                                     config.l3.bandwidth_bytes_per_s * config.l3.ports});
    const double bm_per_cycle =
        std::min(derived.l3_l2_bandwidth / double(T), std::min(config.block_mover.count, 2u) * bm_move) / hz;
    const double st_per_cycle = derived.l2_l1_bandwidth / double(T) / hz;

    // One full task on one compute tile: the fabric, the BlockMovers and the Streamers overlap.
    const double fabric_tiles = double(std::min<uint64_t>(task_rows, Mt)) * double(std::min<uint64_t>(task_cols, Nt));
    // A PE does the element type's MACs per cycle (hw::matmul_cycles).
    // float32 is always one MAC (hw::Fabric::element_types).
    const uint64_t macs = mm.a_type == DType::Float32 ? 1 : config.fabric_type(to_string(mm.a_type)).ops_per_cycle;
    const double compute =
        fabric_tiles * (double(ceil_div(tile.tm, R) * ceil_div(tile.tn, C) * ceil_div(K, macs)) + double(ks * (R + C)));
    // A and B chunks in, C out after every pass and back in before every pass but the first;
    // a residual tile in for the drain. Each operand's elements in its own type's bytes.
    const uint64_t ea = dtype_bytes(mm.a_type), eb = dtype_bytes(mm.b_type), ec = dtype_bytes(mm.c_type);
    const uint64_t tile_bytes = (tile.tm * ea + tile.tn * eb) * K +
                                uint64_t(tile.tm) * tile.tn * ((2 * passes - 1) * ec + (mm.residual ? dtype_bytes(mm.residual_type) : 0));
    const double onchip = fabric_tiles * double(tile_bytes);
    const double task_time = std::max({compute, onchip / bm_per_cycle, onchip / st_per_cycle});
    // A convolution reads each task row's input rows (halo included) instead of its A rows.
    uint64_t a_elements = M * K, first_panel = (dataflow == Dataflow::OutputStationary ? extent.rows : extent.cols) * K;
    if (mm.conv) {
        a_elements = 0;
        for (uint64_t r = 0; r < Pm; ++r) {
            const uint64_t p0 = r * task_rows * tile.tm, p1 = std::min(M, (r + 1) * task_rows * tile.tm);
            a_elements += mm.conv->region(p0, p1).count * mm.conv->w * mm.conv->cg;
        }
        first_panel = mm.conv->max_region_pixels(extent.rows) * mm.conv->cg;
    }
    const uint64_t dram =
        mm.batch * (ea * a_elements * Pn + eb * K * N * Pm + ec * M * N + (bias ? dtype_bytes(mm.bias_type) * N * Pm : 0) +
                    (mm.scale ? dtype_bytes(mm.scale_type) * N * Pm : 0) +
                    (mm.residual ? dtype_bytes(mm.residual_type) * M * N : 0));
    const double active = double(std::min(tasks, T));
    // The first panel (A's, or B's weight-stationary), all of K (also in passes: after each
    // pass the next one's panel waits for the last read of this one's), loaded by every
    // active task at once.
    const uint64_t panel_bytes = dataflow == Dataflow::OutputStationary || mm.conv ? ea : eb;
    const double prologue = double(panel_bytes) * double(first_panel) / (dram_per_cycle / active);
    const double rounds = double(ceil_div(tasks, T));
    out.tile = tile;
    out.task_rows = task_rows;
    out.task_cols = task_cols;
    out.cycles = std::max(rounds * task_time, double(dram) / dram_per_cycle) + prologue;
    out.passes = passes;
    out.dram_bytes = dram;
    const uint64_t strips = dataflow == Dataflow::OutputStationary ? std::min<uint64_t>(task_cols, Nt)
                                                                   : std::min<uint64_t>(task_rows, Mt);
    const uint64_t panel_tiles = dataflow == Dataflow::OutputStationary ? std::min<uint64_t>(task_rows, Mt)
                                                                        : std::min<uint64_t>(task_cols, Nt);
    out.ops = tasks * ((mm.conv ? 1 : ks * panel_tiles) + ks * strips + task_stores(dataflow, passes, strips, strips * panel_tiles) +
                       (bias ? 3 : 0) + (mm.scale ? 3 : 0) +
                       uint64_t(fabric_tiles) * (5 * ks + 3 * passes + 2 * (passes - 1) + (mm.residual ? 3 : 0)));
    return true;
}

TilingChoice choose_tiling(const hw::Config& config, const Graph& graph, uint32_t op, Dataflow dataflow) {
    const MatmulOperands mm = matmul_operands(graph, op);
    const uint64_t M = mm.m, N = mm.n;
    const uint64_t grid = tiles_within_limit(M, config.fabric.rows) * tiles_within_limit(N, config.fabric.cols);
    if (grid * mm.batch > kMaxCTiles) {
        std::ostringstream msg;
        msg << "op '" << graph.ops()[op].name << "': C [" << M << ", " << N << "]"
            << (mm.batch > 1 ? " x " + std::to_string(mm.batch) + " matrices" : "") << " is more than " << kMaxCTiles
            << " tiles of the " << config.fabric.rows << "x" << config.fabric.cols
            << " fabric, more than a kernel may have";
        throw CompileError(msg.str());
    }
    // Tile sides: the fabric's side times 1, 2, 4, ... up to the whole dimension (or the
    // longest tile side); which of them fit is L1's (and L2's) to say, in evaluate_tiling.
    const auto sides = [](uint64_t dim, uint64_t fabric) {
        std::set<uint32_t> out;
        for (uint64_t side = fabric;; side *= 2) {
            out.insert(uint32_t(std::min({dim, side, kMaxTileSide})));
            if (side >= dim || side >= kMaxTileSide) return out;
        }
    };
    std::set<uint32_t> tms = sides(M, config.fabric.rows);
    const std::set<uint32_t> tns = sides(N, config.fabric.cols);
    // A convolution also tries tiles of whole output rows (1, 2, 4, ... rows): each tap of
    // such a tile is one gather transfer, and its input rows are no more than it needs.
    if (mm.conv)
        for (uint64_t rows = 1; rows * mm.conv->ow <= std::min<uint64_t>(M, kMaxTileSide); rows *= 2)
            tms.insert(uint32_t(rows * mm.conv->ow));
    // Every tile shape, task shape and number of K passes (1, 2, 4, ...: each later pass
    // brings the C tiles back, and a pass's smaller panel leaves L3 room for bigger tiles).
    // The closed form ranks them; the best are replayed.
    std::vector<TilingChoice> all;
    const uint64_t most_passes = std::min<uint64_t>(std::max<uint64_t>(1, mm.k / 16), kMaxTileSide);
    for (uint32_t passes = 1; passes <= most_passes; passes *= 2)
        for (uint32_t tm : tms)
            for (uint32_t tn : tns) {
                const TileShape tile{tm, tn, 0, 0};
                for (uint32_t rows : task_sizes(uint32_t(ceil_div(M, tm))))
                    for (uint32_t cols : task_sizes(uint32_t(ceil_div(N, tn)))) {
                        TilingChoice c;
                        if (evaluate_tiling(config, graph, op, dataflow, tile, rows, cols, c, passes)) all.push_back(c);
                    }
            }
    if (all.empty()) {
        // Report the smallest candidate against the level it overflows.
        const uint32_t k16 = uint32_t(std::min<uint64_t>(mm.k, 16));
        const TileShape tile{*tms.begin(), *tns.begin(), k16, k16 < mm.k && !mm.one_k_pass() ? k16 : 0};
        const auto plan =
            plan_buffers(mm, mm.k, dataflow, tile, extent_of(graph, op, tile, 1, 1));
        hw::Level level = overflow(config, plan);
        if (level == hw::Level::Dram) level = hw::Level::L3;
        uint32_t tensor = plan.front().tensor;
        uint64_t biggest = 0;
        for (const BufferSpec& b : plan)
            if (b.level == level && b.slots * b.slot_bytes > biggest) {
                biggest = b.slots * b.slot_bytes;
                tensor = b.tensor;
            }
        std::ostringstream msg;
        msg << "op '" << graph.ops()[op].name << (mm.conv ? "' (conv_nhwc, implicit GEMM " : "' (matmul ") << M << "x"
            << N << "x" << mm.k
            << "): no tiling fits config '" << config.name << "': even tiles of " << tile.tm << "x" << tile.tn << "x"
            << tile.tk << " need " << level_bytes(plan, level) << " bytes of " << hw::to_string(level)
            << " per compute tile (largest: tensor '" << graph.tensor(tensor).name << "', " << biggest
            << " bytes) but " << hw::to_string(level) << " has " << level_capacity(config, level)
            << (mm.conv ? " (a task's input rows, every channel of its group, stay in L3: input-channel passes are "
                          "not yet supported)"
                        : "");
        if (mm.one_k_pass())  // why the K passes that would have made it fit were not tried
            msg << "; its " << to_string(mm.c_type) << " C from " << to_string(mm.a_type)
                << " operands takes all of K in one pass (the accumulators' partial sums cannot be stored in C's type)";
        throw CompileError(msg.str());
    }
    // Distinct candidates (several pass counts can give the same kc), best closed form first.
    std::sort(all.begin(), all.end(), [](const TilingChoice& a, const TilingChoice& b) {
        if (a.cycles != b.cycles) return a.cycles < b.cycles;
        if (a.dram_bytes != b.dram_bytes) return a.dram_bytes < b.dram_bytes;
        return a.ops < b.ops;
    });
    // The closed form cannot tell apart candidates within a few per cent of its best (it knows
    // nothing of the waits between ops), so that band is taken fewest ops first: big tiles,
    // whose programs have the least per-op overhead, come before the many small-tile
    // candidates that crowd the top of the closed form's order.
    const uint64_t best_ops = all.front().ops;
    const double band = all.front().cycles * (1 + kClosedFormEqualShare);
    const auto band_end = std::find_if(all.begin(), all.end(), [&](const TilingChoice& c) { return c.cycles > band; });
    std::stable_sort(all.begin(), band_end, [](const TilingChoice& a, const TilingChoice& b) { return a.ops < b.ops; });
    // A program too big to replay twice within the budget is chosen by the closed form alone.
    if (2 * best_ops > kReplayOpBudget) return all.front();
    std::vector<TilingChoice> replayed;
    uint64_t ops = 0;
    for (const TilingChoice& c : all) {
        if (replayed.size() == kMaxReplays || ops + c.ops > kReplayOpBudget) break;
        const auto same = [&](const TilingChoice& r) {
            return r.tile == c.tile && r.task_rows == c.task_rows && r.task_cols == c.task_cols;
        };
        if (std::any_of(replayed.begin(), replayed.end(), same)) continue;
        replayed.push_back(c);
        ops += c.ops;
    }
    replay_each(config, graph, op, dataflow, replayed);
    return pick(replayed);
}

Program tiling_program(const hw::Config& config, const Graph& graph, uint32_t op, Dataflow dataflow,
                       const TilingChoice& choice) {
    Program p;
    p.target = target_of(config);
    Op single = graph.ops()[op];
    std::map<uint32_t, uint32_t> copied;  // graph tensor -> p.graph tensor (A and B may be one)
    const auto copy = [&](uint32_t t, TensorRole role) {
        if (!copied.count(t)) {
            Tensor x = graph.tensor(t);
            x.role = role;
            copied[t] = p.graph.add_tensor(x);
        }
        return copied[t];
    };
    for (uint32_t& t : single.inputs)
        if (t != kNoTensor) t = copy(t, TensorRole::Input);
    for (uint32_t& t : single.outputs)
        if (t != kNoTensor) t = copy(t, TensorRole::Output);
    p.graph.add_op(single);
    p.hints = p.kernels[add_kernel(p, 0, dataflow, choice)].hints;
    return p;
}

double replay_tiling(const hw::Config& config, const Graph& graph, uint32_t op, Dataflow dataflow,
                     const TilingChoice& choice, double limit) {
    return replay_cycles(bind(tiling_program(config, graph, op, dataflow, choice), config), config, limit);
}

/// A Transpose: row tiles of whole matrices (the movers transpose each), as many per tile as
/// spread them over the compute tiles, two per tile where there are enough; its estimate is
/// the replay of its op stream (it has no engine formula: the movers do all the work).
template <typename Fits>
TilingChoice choose_transpose_tiling(const hw::Config& config, const Graph& graph, uint32_t op, const VectorOperands& v,
                                     const Fits& fits) {
    const uint64_t r = v.matrix_rows, matrices = v.rows / r, tiles = config.compute_tiles;
    if (!fits(r)) {
        const std::vector<BufferSpec> plan = plan_vector_buffers(graph, v, r);
        std::ostringstream msg;
        msg << "op '" << graph.ops()[op].name << "' (" << graph.ops()[op].kind << "): a matrix of " << r << " x "
            << v.cols << " of tensor '" << graph.tensor(v.a).name << "' needs " << level_bytes(plan, hw::Level::L2) << " bytes of L2 and "
            << level_bytes(plan, hw::Level::L3) << " bytes of L3 per compute tile with its double buffers, but config '"
            << config.name << "' has " << level_capacity(config, hw::Level::L2) << " and "
            << level_capacity(config, hw::Level::L3) << " (matrices that large are not yet supported)";
        throw CompileError(msg.str());
    }
    uint64_t per_tile = std::max<uint64_t>(1, (matrices + 2 * tiles - 1) / (2 * tiles));
    while (per_tile > 1 && (!fits(per_tile * r) || per_tile * r > kMaxTileSide)) --per_tile;
    TilingChoice choice;
    choice.tile = {uint32_t(per_tile * r), uint32_t(v.cols), 1, 0};
    choice.task_rows = uint32_t((tile_count(v.rows, choice.tile.tm) + tiles - 1) / tiles);
    choice.task_cols = 1;
    choice.passes = 1;
    choice.cycles = replay_tiling(config, graph, op, Dataflow::OutputStationary, choice);
    return choice;
}

bool vector_tile_fits(const hw::Config& config, const Graph& graph, const VectorOperands& v, uint64_t tm) {
    const std::vector<BufferSpec> plan = plan_vector_buffers(graph, v, tm);
    return level_bytes(plan, hw::Level::L2) <= level_capacity(config, hw::Level::L2) &&
           level_bytes(plan, hw::Level::L3) <= level_capacity(config, hw::Level::L3);
}

TilingChoice choose_vector_tiling(const hw::Config& config, const Graph& graph, uint32_t op) {
    const VectorOperands v = vector_operands(graph, op);
    const auto fits = [&](uint64_t tm) { return vector_tile_fits(config, graph, v, tm); };
    if (!fits(1)) {
        const std::vector<BufferSpec> plan = plan_vector_buffers(graph, v, 1);
        std::ostringstream msg;
        msg << "op '" << graph.ops()[op].name << "' (" << graph.ops()[op].kind << "): ";
        const std::string tensor = " of tensor '" + graph.tensor(v.a).name + "'";
        if (v.windowed())  // a window op's row is a plane in and a plane out
            msg << "a plane of " << v.command.window.in_h << " x " << v.command.window.in_w << tensor << " in and "
                << v.command.window.out_h << " x " << v.command.window.out_w << " out";
        else
            msg << "a row of " << v.cols << " elements" << tensor;
        msg << " needs " << level_bytes(plan, hw::Level::L2) << " bytes of L2 and "
            << level_bytes(plan, hw::Level::L3) << " bytes of L3 per compute tile with its double buffers, but config '"
            << config.name << "' has " << level_capacity(config, hw::Level::L2) << " and "
            << level_capacity(config, hw::Level::L3) << (v.windowed() ? " (planes that large" : " (rows that long")
            << " are not yet supported)";
        throw CompileError(msg.str());
    }
    // Every compute tile gets work, two row tiles each where there are rows enough (one in
    // flight while the other moves); the largest that fits below that.
    const uint64_t tiles = config.compute_tiles;
    if (v.transpose) return choose_transpose_tiling(config, graph, op, v, fits);
    uint64_t tm = std::max<uint64_t>(1, (v.rows + 2 * tiles - 1) / (2 * tiles));
    tm = std::min<uint64_t>(tm, kMaxTileSide);
    if (!fits(tm)) {
        uint64_t lo = 1, hi = tm;  // fits(lo), !fits(hi)
        while (hi - lo > 1) {
            const uint64_t mid = lo + (hi - lo) / 2;
            (fits(mid) ? lo : hi) = mid;
        }
        tm = lo;
    }
    TilingChoice choice;
    choice.tile = {uint32_t(tm), uint32_t(v.cols), 1, 0};
    const uint64_t row_tiles = (v.rows + tm - 1) / tm;
    choice.task_rows = uint32_t((row_tiles + tiles - 1) / tiles);
    choice.task_cols = 1;
    // The engine's cycles on the busiest compute tile (its row tiles one after the other).
    // A vector_chain's row tile runs each step's command in turn.
    const auto engine_cycles = [&](uint64_t rows) {
        uint64_t cycles = 0;
        for (const VectorOperands& step : v.chain.empty() ? std::vector<VectorOperands>{v} : v.chain) {
            hw::VectorCommand command = step.command;
            command.cols = uint32_t(v.cols);
            command.rows = uint32_t(rows);
            cycles += hw::vector_cycles(command, config.vector);
        }
        return cycles;
    };
    const uint64_t full = engine_cycles(tm);
    const uint64_t ragged = engine_cycles(v.rows - (row_tiles - 1) * tm);
    choice.cycles = double(row_tiles <= choice.task_rows ? (row_tiles - 1) * full + ragged : choice.task_rows * full);
    choice.passes = 1;
    return choice;
}

TilingChoice choose_copy_tiling(const hw::Config& config, const Graph& graph, uint32_t op) {
    const CopyOperands c = copy_operands(graph, op);
    const uint64_t tiles = config.compute_tiles, copies = c.copies.size();
    const Op& o = graph.ops()[op];
    if (copies > kMaxCTiles)  // before sizing pieces: the grid has a row per copy
        throw CompileError("op '" + o.name + "' (" + o.kind + "): " + std::to_string(copies) + " copies, more than " +
                           std::to_string(kMaxCTiles) + " (not yet supported)");
    const auto fits = [&](uint64_t tn, uint64_t tk) {
        return overflow(config, plan_copy_buffers(graph, c, {1, uint32_t(tn), uint32_t(tk), 0})) == hw::Level::Dram;
    };
    if (!fits(1, 1)) {  // no config is that small, but say so rather than loop
        std::ostringstream msg;
        msg << "op '" << o.name << "' (" << o.kind << "): one element does not fit config '" << config.name << "'";
        throw CompileError(msg.str());
    }
    /// The largest value in [1, hi] for which `ok` holds (it holds for 1 and is monotone).
    const auto largest = [](uint64_t hi, const auto& ok) {
        if (ok(hi)) return hi;
        uint64_t lo = 1;  // ok(lo), !ok(hi)
        while (hi - lo > 1) {
            const uint64_t mid = lo + (hi - lo) / 2;
            (ok(mid) ? lo : hi) = mid;
        }
        return lo;
    };
    const uint64_t tk = largest(std::min<uint64_t>(c.max_cols, kMaxTileSide), [&](uint64_t k) { return fits(1, k); });
    // About two pieces per compute tile: copies split into row chunks when there are few.
    const uint64_t split = copies >= 2 * tiles ? 1 : (2 * tiles + copies - 1) / copies;
    const uint64_t want = std::min<uint64_t>(std::max<uint64_t>(1, (c.max_rows + split - 1) / split), kMaxTileSide);
    const uint64_t tn = largest(want, [&](uint64_t n) { return fits(n, tk); });
    TilingChoice choice;
    choice.tile = {1, uint32_t(tn), uint32_t(tk), 0};
    const uint64_t chunks = tile_count(c.max_rows, uint32_t(tn));
    if (copies * chunks > kMaxCTiles)
        throw CompileError("op '" + o.name + "' (" + o.kind + "): " + std::to_string(copies) + " copies of up to " +
                           std::to_string(chunks) + " pieces, more than " + std::to_string(kMaxCTiles) +
                           " tiles (not yet supported)");
    if (copies >= tiles) {  // whole copies per task
        choice.task_rows = uint32_t((copies + tiles - 1) / tiles);
        choice.task_cols = uint32_t(chunks);
    } else {  // each copy's row chunks over tiles / copies tasks
        const uint64_t per_copy = tiles / copies;
        choice.task_rows = 1;
        choice.task_cols = uint32_t((chunks + per_copy - 1) / per_copy);
    }
    choice.passes = 1;
    choice.cycles = replay_tiling(config, graph, op, Dataflow::OutputStationary, choice);
    return choice;
}

std::pair<Dataflow, TilingChoice> choose_op_tiling(const hw::Config& config, const Graph& graph, uint32_t op,
                                                   Dataflow requested) {
    const Op& o = graph.ops()[op];
    if (is_copy_op(graph, o)) return {Dataflow::OutputStationary, choose_copy_tiling(config, graph, op)};
    if (is_vector_op(o)) return {Dataflow::OutputStationary, choose_vector_tiling(config, graph, op)};
    if (is_ffn_op(o)) return {Dataflow::OutputStationary, choose_ffn_tiling(config, graph, op)};
    if (is_flash_op(o)) return {Dataflow::OutputStationary, choose_flash_tiling(config, graph, op)};
    if (o.kind == "conv_nhwc") return {Dataflow::OutputStationary, choose_tiling(config, graph, op, Dataflow::OutputStationary)};
    return {requested, choose_tiling(config, graph, op, requested)};
}

}  // namespace kpu::compiler
