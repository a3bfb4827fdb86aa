// Tiling properties, traffic and the op stream.
#include "compiler/dfx.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include <gtest/gtest.h>

#include "compiler/tiler.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

struct Shape {
    uint64_t m, n, k;
};

const Shape kShapes[] = {{1, 1, 1},    {7, 13, 5},    {17, 31, 29},  {64, 64, 64},   {1, 512, 7},
                         {300, 1, 40}, {100, 100, 1}, {129, 65, 257}, {33, 200, 96}, {256, 24, 1000}};

/// Every (i, j, k) of the iteration space is computed by exactly one MATMUL_TILE; the
/// accumulators start from zero exactly on the first K chunk, from the C tile in L1
/// (load_c) on the first chunk of every later K pass, and carry on otherwise; every C
/// element is drained once per pass and loaded back once per pass but the first; every
/// buffer fits its level on the target.
void check_coverage(const Program& p, const hw::Config& target) {
    const MatmulOperands mm = matmul_operands(p.graph, 0);
    const uint64_t M = mm.m, N = mm.n, K = mm.k;
    const uint64_t kc = p.kernels[0].tile.pass_k(K), passes = tile_count(K, uint32_t(kc));
    EXPECT_EQ(kc % p.kernels[0].tile.tk == 0 || passes == 1, true) << kc;
    std::vector<uint8_t> macs(M * N * K, 0), drained(M * N, 0), loaded(M * N, 0);
    for_each_op(p, [&](const DfxOp& op) {
        if (op.kind == DfxOpKind::Matmul) {
            EXPECT_EQ(op.accumulate, op.k_first % kc != 0);
            EXPECT_EQ(op.load_c, op.k_first != 0 && op.k_first % kc == 0);
            for (uint64_t i = op.row; i < op.row + op.m; ++i)
                for (uint64_t j = op.col; j < op.col + op.n; ++j) {
                    loaded[i * N + j] += op.load_c;
                    for (uint64_t k = op.k_first; k < op.k_first + op.k; ++k) ++macs[(i * N + j) * K + k];
                }
        }
        if (op.kind == DfxOpKind::Drain)
            for (uint64_t i = op.row; i < op.row + op.m; ++i)
                for (uint64_t j = op.col; j < op.col + op.n; ++j) ++drained[i * N + j];
    });
    EXPECT_EQ(std::count(macs.begin(), macs.end(), 1), int64_t(macs.size()));
    EXPECT_EQ(std::count(drained.begin(), drained.end(), passes), int64_t(drained.size()));
    EXPECT_EQ(std::count(loaded.begin(), loaded.end(), passes - 1), int64_t(loaded.size()));
    const auto plan = plan_buffers(p.graph, p.kernels[0], max_task_extent(p, 0));
    for (hw::Level level : {hw::Level::L1, hw::Level::L2, hw::Level::L3})
        EXPECT_LE(level_bytes(plan, level), level_capacity(target, level)) << hw::to_string(level);
}

/// Task grid of kernel 0: the distinct row and column ranges.
void grid(const Program& p, uint64_t& pm, uint64_t& pn) {
    std::set<uint32_t> rows, cols;
    for (const Task& t : p.tasks) {
        rows.insert(t.r0);
        cols.insert(t.c0);
    }
    pm = rows.size();
    pn = cols.size();
}

TEST(Tiler, TilesCoverTheIterationSpaceExactlyOnceAndFitEveryLevel) {
    for (const char* name : {"minimal", "t64"})
        for (Dataflow d : {Dataflow::OutputStationary, Dataflow::WeightStationary})
            for (const Shape& s : kShapes) {
                SCOPED_TRACE(std::string(name) + " " + to_string(d) + " " + std::to_string(s.m) + "x" +
                             std::to_string(s.n) + "x" + std::to_string(s.k));
                const hw::Config target = test::config(name);
                const Program p = test::compile_matmul(s.m, s.n, s.k, target, d, s.n % 2 == 1);
                check_coverage(p, target);
            }
}

TEST(Tiler, TileSizesFollowTheFabricAndRaggedEdgesAreClipped) {
    const hw::Config t64 = test::config("t64");
    const Program p = test::compile_matmul(100, 40, 30, t64);
    const TileShape t = p.kernels[0].tile;
    EXPECT_EQ(t.tm % 16 == 0 || t.tm == 100, true) << t.tm;
    EXPECT_LE(t.tn, 40u);
    EXPECT_EQ(t.tk, 30u);  // all of K fits in one chunk
}

TEST(Tiler, TheEstimateMovesL3ToL2AtTwoL2BankPortsPerTile) {
    // t64: a BlockMover does 96 GB/s, but each move writes one L2 bank (48 GB/s), and the A and
    // B moves run on the tile's two BlockMovers: 96 GB/s per tile, 64 bytes per 1.5 GHz cycle.
    const hw::Config t64 = test::config("t64");
    const Program p = test::compile_matmul(2048, 2048, 2048, t64);
    TilingChoice c;
    ASSERT_TRUE(evaluate_tiling(t64, p.graph, 0, Dataflow::OutputStationary, {16, 16, 0}, 5, 128, c));
    EXPECT_EQ(c.tile.tk, 688u);
    const double tiles = 5.0 * 128, K = 2048;  // the tiling evaluated: 26 tasks of 5 x 128 tiles
    const double compute = tiles * (K + 3 * 32), onchip = tiles * 4 * (32 * K + 256);
    const double task = std::max(compute, onchip / 64.0);
    EXPECT_EQ(task, onchip / 64.0);  // bound by the BlockMovers, not the fabric
    const double dram = 4.0 * (2048.0 * 2048 + 2048.0 * 2048 * 26 + 2048.0 * 2048), dram_per_cycle = 512e9 / 1.5e9;
    EXPECT_GT(task, 1.5 * dram / dram_per_cycle);
    const double prologue = 4.0 * 80 * K / (dram_per_cycle / 26);
    EXPECT_EQ(c.dram_bytes, uint64_t(dram));
    EXPECT_NEAR(c.cycles, std::max(task, dram / dram_per_cycle) + prologue, 1.0);
}

TEST(Tiler, AProgramThatCannotFitNamesTheTensorTheLevelAndTheNumbers) {
    // minimal with 2 KiB of L1 per tile: 8 x 8 x 16 chunks of A, B and C, double-buffered,
    // need 2.5 KiB, whatever the passes over K.
    hw::Config small = test::config("minimal");
    small.l1.count = 2;
    const std::string e = test::error_of([&] { test::compile_matmul(8, 8, 64, small); });
    EXPECT_NE(e.find("op 'matmul' (matmul 8x8x64): no tiling fits config 'minimal'"), std::string::npos) << e;
    EXPECT_NE(e.find("need 2560 bytes of L1 per compute tile"), std::string::npos) << e;
    EXPECT_NE(e.find("but L1 has 2048"), std::string::npos) << e;
}

TEST(Tiler, AKWhosePanelDoesNotFitL3RunsInPasses) {
    // One 8-wide strip of B with K = 65536 is 2 MiB, minimal's L3 256 KiB: K runs in passes
    // whose panel and strips fit, every pass but the last a multiple of the chunk.
    for (Dataflow d : {Dataflow::OutputStationary, Dataflow::WeightStationary}) {
        SCOPED_TRACE(to_string(d));
        const hw::Config minimal = test::config("minimal");
        const Program p = test::compile_matmul(8, 8, 1 << 16, minimal, d, true);
        const TileShape t = p.kernels[0].tile;
        ASSERT_GT(t.kc, 0u);
        EXPECT_LT(t.kc, 1u << 16);
        EXPECT_EQ(t.kc % t.tk, 0u);
        // Per element of a pass: an 8-row panel and two 8-wide strips, 96 bytes: at most 2730
        // elements per pass fit the 256 KiB L3, so at least 24 passes.
        const uint64_t passes = tile_count(1 << 16, t.kc);
        EXPECT_GE(passes, 24u);
        EXPECT_LE(96ull * t.kc, 256u * 1024);
        check_coverage(p, minimal);
        // The DRAM traffic is that of one pass: every operand byte read once per task.
        uint64_t pm = 0, pn = 0;
        grid(p, pm, pn);
        EXPECT_EQ(p.hints.dram_read_bytes, 4 * (8ull * 65536 * pn + 65536ull * 8 * pm + 8 * pm));
    }
    // A K that fits stays one pass.
    EXPECT_EQ(test::compile_matmul(256, 256, 256, test::config("t64")).kernels[0].tile.kc, 0u);
}

TEST(Traffic, HintsEqualTheOpStreamAndTheClosedForm) {
    for (const char* name : {"minimal", "edge", "t64"})
        for (Dataflow d : {Dataflow::OutputStationary, Dataflow::WeightStationary})
            for (bool bias : {false, true})
                for (const Shape& s :
                     {Shape{256, 256, 256}, Shape{129, 65, 257}, Shape{512, 96, 64}, Shape{40, 24, 20000}}) {
                    SCOPED_TRACE(std::string(name) + " " + to_string(d) + " bias " + std::to_string(bias) + " " +
                                 std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k));
                    const Program p = test::compile_matmul(s.m, s.n, s.k, test::config(name), d, bias);
                    uint64_t read = 0, write = 0;
                    for_each_op(p, [&](const DfxOp& op) {
                        if (op.kind == DfxOpKind::Load) read += op.bytes();
                        if (op.kind == DfxOpKind::Store) write += op.bytes();
                    });
                    EXPECT_EQ(p.hints.dram_read_bytes, read);
                    EXPECT_EQ(p.hints.dram_write_bytes, write);
                    uint64_t pm = 0, pn = 0;
                    grid(p, pm, pn);
                    EXPECT_EQ(read, 4 * (s.m * s.k * pn + s.k * s.n * pm + (bias ? s.n * pm : 0)));
                    EXPECT_EQ(write, 4 * s.m * s.n);
                    EXPECT_EQ(count_ops(p), count_expanded_ops(p));
                }
}

TEST(Traffic, The1024CubedMatmulMovesWhatItsHintsSay) {
    // The public reference moves 134 MB for this while its hints claim 4.7 MB.
    const Program p = test::compile_matmul(1024, 1024, 1024, test::config("t64"));
    uint64_t moved = 0;
    for_each_op(p, [&](const DfxOp& op) {
        if (op.kind == DfxOpKind::Load || op.kind == DfxOpKind::Store) moved += op.bytes();
    });
    EXPECT_EQ(moved, p.hints.dram_read_bytes + p.hints.dram_write_bytes);
    // A is read once per column group and B once per row panel: far below 134 MB.
    EXPECT_LT(moved, 64u << 20);
    EXPECT_EQ(p.hints.macs, 1ull << 30);
}

TEST(OpStream, OutputStationaryKeepsTheAPanelAndCInTheFabric) {
    const Program p = test::compile_matmul(64, 64, 64, test::config("minimal"));
    std::map<std::string, uint64_t> loaded;
    int accumulate_runs = 0;
    for_each_op(p, [&](const DfxOp& op) {
        if (op.kind == DfxOpKind::Load) loaded[p.graph.tensor(op.tensor).name] += op.bytes();
        if (op.kind == DfxOpKind::Matmul && !op.accumulate) ++accumulate_runs;
    });
    uint64_t pm = 0, pn = 0;
    grid(p, pm, pn);
    // A's rows come from DRAM once per task (the panel is reused across the task's strips).
    EXPECT_EQ(loaded["A"], 4 * 64 * 64 * pn);
    const uint32_t fabric_tiles = tile_count(64, p.kernels[0].tile.tm) * tile_count(64, p.kernels[0].tile.tn);
    EXPECT_EQ(uint32_t(accumulate_runs), fabric_tiles);  // the accumulators start once per C tile
}

/// Every LOAD is one fabric tile's block of one K chunk, and the first MATMUL_TILE of a task
/// waits (through any chain of deps) for exactly the two blocks it reads, not for the rest of
/// the panel: the fabric starts while the rest of the task's operands stream in. Every
/// MATMUL_TILE waits for LOADs that cover all it reads.
TEST(OpStream, EachBlockIsLoadedOnceJustBeforeItsFirstUse) {
    for (const auto& [name, s] : {std::pair{"minimal", Shape{100, 70, 300}}, std::pair{"t64", Shape{512, 512, 1024}},
                                  std::pair{"minimal", Shape{24, 40, 20000}}})
        for (Dataflow d : {Dataflow::OutputStationary, Dataflow::WeightStationary}) {
            SCOPED_TRACE(std::string(name) + " " + to_string(d) + " " + std::to_string(s.m) + "x" +
                         std::to_string(s.n) + "x" + std::to_string(s.k));
            const Program p = test::compile_matmul(s.m, s.n, s.k, test::config(name), d);
            const TileShape tile = p.kernels[0].tile;
            ASSERT_GT(tile_count(s.k, tile.tk), 1u);  // several chunks, or the test shows nothing
            std::vector<std::set<uint32_t>> loads_before;  // per op: the LOADs it waits for, transitively
            std::map<uint32_t, DfxOp> loads;
            std::set<uint32_t> started;  // tasks whose first MATMUL_TILE was seen
            std::set<std::tuple<uint32_t, uint32_t, uint64_t, uint64_t>> loaded;  // task, tensor, row, col
            for_each_op(p, [&](const DfxOp& op) {
                std::set<uint32_t> before;
                for (uint32_t dep : op.deps) {
                    before.insert(loads_before[dep].begin(), loads_before[dep].end());
                    if (loads.count(dep)) before.insert(dep);
                }
                if (op.kind == DfxOpKind::Load) {
                    const bool is_a = p.graph.tensor(op.tensor).name == "A";
                    EXPECT_LE(op.rows, is_a ? tile.tm : tile.tk);
                    EXPECT_LE(op.cols, is_a ? tile.tk : tile.tn);
                    EXPECT_TRUE(loaded.insert({op.task, op.tensor, op.row, op.col}).second) << "loaded twice: op " << op.id;
                    loads[op.id] = op;
                }
                if (op.kind == DfxOpKind::Matmul) {
                    // Elements of A[I, Q] and B[Q, J] that the LOADs waited for cover.
                    auto covered = [&](const char* tensor, uint64_t r0, uint64_t r1, uint64_t c0, uint64_t c1) {
                        uint64_t n = 0;
                        for (uint32_t id : before) {
                            const DfxOp& l = loads[id];
                            const uint64_t rows = std::min(l.row + l.rows, r1), cols = std::min(l.col + l.cols, c1);
                            if (p.graph.tensor(l.tensor).name == tensor && std::max(l.row, r0) < rows &&
                                std::max(l.col, c0) < cols)
                                n += (rows - std::max(l.row, r0)) * (cols - std::max(l.col, c0));
                        }
                        return n;
                    };
                    const uint64_t a = covered("A", op.row, op.row + op.m, op.k_first, op.k_first + op.k);
                    const uint64_t b = covered("B", op.k_first, op.k_first + op.k, op.col, op.col + op.n);
                    EXPECT_EQ(a, uint64_t(op.m) * op.k) << "op " << op.id;
                    EXPECT_EQ(b, uint64_t(op.k) * op.n) << "op " << op.id;
                    if (started.insert(op.task).second) {  // the task's first: only its own two blocks
                        uint64_t elements = 0;
                        for (uint32_t id : before) elements += loads[id].rows * loads[id].cols;
                        EXPECT_EQ(elements, uint64_t(op.m) * op.k + uint64_t(op.k) * op.n) << "op " << op.id;
                    }
                }
                loads_before.push_back(std::move(before));
            });
            EXPECT_EQ(started.size(), p.tasks.size());
        }
}

/// With K in passes, a C tile coming back from `out` for the next pass waits for its own
/// writeback (and for the one that last read its L2 slot), not for its neighbours': every
/// C tile is contiguous in `out` (column bands), so the byte ranges of side-by-side tiles do
/// not overlap. Were C laid out as rows of the whole task, weight-stationary (whose strips
/// are rows of tiles) would make each tile wait for the round trip of the one before it.
TEST(OpStream, ACTileComingBackForTheNextPassWaitsOnlyForItsOwnWriteback) {
    const hw::Config t64 = test::config("t64");
    const Program source = test::compile_matmul(128, 256, 2048, t64);
    for (Dataflow d : {Dataflow::OutputStationary, Dataflow::WeightStationary}) {
        SCOPED_TRACE(to_string(d));
        // Four C tiles per strip (a column of them output-stationary, a row weight-stationary),
        // K in passes.
        const bool os = d == Dataflow::OutputStationary;
        TilingChoice choice;
        ASSERT_TRUE(evaluate_tiling(t64, source.graph, 0, d, {32, 32, 0}, os ? 4 : 1, os ? 1 : 4, choice, 4));
        const Program p = tiling_program(t64, source.graph, 0, d, choice);
        ASSERT_GT(p.kernels[0].tile.kc, 0u);
        std::map<uint32_t, DfxOp> writebacks;  // MOVEs into `out`, by id
        uint64_t reloads = 0;
        for_each_op(p, [&](const DfxOp& op) {
            if (op.kind != DfxOpKind::Move) return;
            if (op.dst.buffer == Buffer::Out) writebacks[op.id] = op;
            if (op.src.buffer != Buffer::Out) return;
            ++reloads;
            for (uint32_t dep : op.deps) {
                const auto w = writebacks.find(dep);
                if (w == writebacks.end()) continue;
                // Its own writeback, or the one that last read the L2 slot it is about to fill.
                const bool own = w->second.row == op.row && w->second.col == op.col;
                const bool slot = w->second.src.buffer == op.dst.buffer && w->second.src.slot == op.dst.slot;
                EXPECT_TRUE(own || slot) << "C tile (" << op.row << ", " << op.col << ") waits for the writeback of ("
                                         << w->second.row << ", " << w->second.col << ")";
            }
        });
        EXPECT_GT(reloads, 0u);
    }
}

TEST(OpStream, MlpSecondLayerLoadsWaitForTheFirstLayersStores) {
    const Program p =
        compile(parse_graph(test::mlp_json(64, 96, 128, 32), "mlp.json"), test::config("edge"), test::unfused());
    std::map<uint32_t, DfxOp> stores;
    bool checked = false;
    for_each_op(p, [&](const DfxOp& op) {
        if (op.kind == DfxOpKind::Store) stores[op.id] = op;
        if (op.kind == DfxOpKind::Load && p.graph.tensor(op.tensor).name == "h") {
            // Every store of h overlapping the loaded rows is a dependency.
            for (const auto& [id, s] : stores)
                if (s.row < op.row + op.rows && op.row < s.row + s.rows) {
                    EXPECT_NE(std::find(op.deps.begin(), op.deps.end(), id), op.deps.end()) << id;
                }
            checked = true;
        }
    });
    EXPECT_TRUE(checked);
    for (const Task& t : p.tasks)
        if (t.kernel == 1) {
            EXPECT_FALSE(t.deps.empty());
        }
}

}  // namespace
}  // namespace kpu::compiler
