// The replay cost model (compiler/replay.h) on hand-built bound programs, against cycles
// computed by hand from the config. On minimal every clock is 1 GHz, so a cycle is a ns and
// B/cycle = GB/s: DMA 8, DRAM 2 x 8 = 16, L3 32, L2 bank 16, L1 buffer 8, Streamer 32.
// First-byte latencies: DMA 60 (DRAM) + 4 (interconnect) + 10 (L3) = 74; Streamer 4 (L2) +
// 1 (L1) = 5.
#include "compiler/replay.h"

#include <gtest/gtest.h>

#include "compiler/tiler.h"
#include "hardware/address_map.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

class ReplayTest : public ::testing::Test {
protected:
    hw::Config cfg = test::config("minimal");

    BoundOp move(EngineKind engine, uint32_t unit, uint64_t src, uint64_t dst, uint32_t rows, uint32_t row_bytes,
                 std::vector<uint32_t> deps = {}) {
        BoundOp op;
        op.id = uint32_t(program.ops.size());
        op.kind = BoundOp::Kind::Move;
        op.engine = engine;
        op.unit = unit;
        op.move = {op.id, src, dst, rows, row_bytes, row_bytes, row_bytes};
        op.deps = std::move(deps);
        return op;
    }
    void add(BoundOp op) { program.ops.push_back(std::move(op)); }
    double replay() { return replay_cycles(program, cfg); }

    BoundProgram program;
    hw::AddressMap map{cfg};
};

TEST_F(ReplayTest, OneLoadTakesItsEngineTimePlusTheLatency) {
    // 8 KiB: the DMA engine needs 1024 cycles, DRAM 512, L3 256.
    add(move(EngineKind::Dma, 0, 0, map.l3_base(0), 8, 1024));
    EXPECT_DOUBLE_EQ(replay(), 1024.0 + 74);
}

TEST_F(ReplayTest, LoadsOnTwoEnginesShareTheDram) {
    // Engines of 32 GB/s: 256 cycles each alone, but DRAM moves 16 B/cycle for both: the
    // second load's bytes are through at 1024.
    cfg.dma.bandwidth_bytes_per_s = 32e9;
    add(move(EngineKind::Dma, 0, 0, map.l3_base(0), 8, 1024));
    add(move(EngineKind::Dma, 1, 8192, map.l3_base(0) + 8192, 8, 1024));
    EXPECT_DOUBLE_EQ(replay(), 1024.0 + 74);
}

TEST_F(ReplayTest, AnEngineStartsItsNextTransferWhileTheLastBytesAreInFlight) {
    // Same engine: the second load starts at 1024 (not at 1098) and completes at 2048 + 74.
    add(move(EngineKind::Dma, 0, 0, map.l3_base(0), 8, 1024));
    add(move(EngineKind::Dma, 0, 8192, map.l3_base(0) + 8192, 8, 1024));
    EXPECT_DOUBLE_EQ(replay(), 2048.0 + 74);
}

TEST_F(ReplayTest, AnOpWaitsForItsDependencies) {
    // The matmul (8 x 8 x 8 on the 8 x 8 fabric: 8 steps + 14 of wavefront) starts when the
    // load has completed.
    add(move(EngineKind::Dma, 0, 0, map.l3_base(0), 8, 1024));
    BoundOp mm;
    mm.id = 1;
    mm.kind = BoundOp::Kind::Matmul;
    mm.engine = EngineKind::Fabric;
    mm.matmul.m = mm.matmul.n = mm.matmul.k = 8;
    mm.deps = {0};
    add(mm);
    EXPECT_DOUBLE_EQ(replay(), 1098.0 + 8 + 14);
    program.ops[1].deps.clear();  // independent: the fabric runs at once
    EXPECT_DOUBLE_EQ(replay(), 1098.0);
}

TEST_F(ReplayTest, TransfersIntoOneL1BufferShareItsPort) {
    // Two Streamers, 1 KiB each from two L2 banks into the same L1 buffer (8 B/cycle): the
    // buffer takes them one after the other, 128 cycles each.
    add(move(EngineKind::Streamer, 0, map.l2_base(0, 0), map.l1_base(0, 0), 1, 1024));
    add(move(EngineKind::Streamer, 1, map.l2_base(0, 1), map.l1_base(0, 0), 1, 1024));
    EXPECT_DOUBLE_EQ(replay(), 256.0 + 5);
    // Into two buffers (a 2 KiB transfer spans both): 1 KiB each, in parallel; the L2 bank
    // (16 B/cycle) also needs 128 cycles for the 2 KiB.
    program.ops.clear();
    add(move(EngineKind::Streamer, 0, map.l2_base(0, 0), map.l1_base(0, 0), 1, 2048));
    EXPECT_DOUBLE_EQ(replay(), 128.0 + 5);
}

TEST_F(ReplayTest, AnEmptyProgramTakesNoTime) { EXPECT_DOUBLE_EQ(replay(), 0.0); }

TEST(Tiler, TheFastestReplayWinsNotTheClosedForm) {
    // datacenter 512^3: the closed form puts two passes of 64 x 128 tiles first (one task per
    // tile: the C tiles' round trip between passes is not in it); replayed, that is slower
    // than one pass, which the tiler takes.
    const hw::Config dc = test::config("datacenter");
    const Program small = test::compile_matmul(512, 512, 512, dc);
    const TilingChoice chosen = choose_tiling(dc, small.graph, 0, Dataflow::OutputStationary);
    EXPECT_EQ(chosen.passes, 1u);
    TilingChoice two, one;
    ASSERT_TRUE(evaluate_tiling(dc, small.graph, 0, Dataflow::OutputStationary, {64, 128, 0}, 1, 1, two, 2));
    ASSERT_TRUE(evaluate_tiling(dc, small.graph, 0, Dataflow::OutputStationary, chosen.tile, chosen.task_rows,
                                chosen.task_cols, one));
    EXPECT_EQ(two.passes, 2u);
    EXPECT_LT(two.cycles, one.cycles);
    EXPECT_GT(replay_tiling(dc, small.graph, 0, Dataflow::OutputStationary, two), 1.2 * chosen.cycles);
    EXPECT_DOUBLE_EQ(chosen.cycles, replay_tiling(dc, small.graph, 0, Dataflow::OutputStationary, chosen));
    // t64 1024^3: the closed form ties a dozen tilings at the DRAM bound; the replay prefers
    // 64 x 64 tiles in several passes (a short prologue) to one pass of 64 x 32 tiles.
    const hw::Config t64 = test::config("t64");
    const Program mid = test::compile_matmul(1024, 1024, 1024, t64);
    const TilingChoice pick = choose_tiling(t64, mid.graph, 0, Dataflow::OutputStationary);
    EXPECT_GT(pick.passes, 1u);
    TilingChoice wide;
    ASSERT_TRUE(evaluate_tiling(t64, mid.graph, 0, Dataflow::OutputStationary, {64, 32, 0}, 2, 8, wide));
    EXPECT_LT(pick.cycles, 0.95 * replay_tiling(t64, mid.graph, 0, Dataflow::OutputStationary, wide));
}

TEST(Tiler, TileSidesGoPastFourFabricTilesWhereL1HoldsThem) {
    // roofline-ref: one compute tile, 512 KiB of L1, 16x16 fabric. At 1024x1024x512 a wider
    // output tile reads each A block once per more columns; the tiler takes one past 64 x 64,
    // and it replays faster than 64 x 64 tiles.
    const hw::Config rr = test::config("roofline-ref");
    const Program p = test::compile_matmul(1024, 1024, 512, rr);
    const TilingChoice c = choose_tiling(rr, p.graph, 0, Dataflow::OutputStationary);
    EXPECT_GT(std::max(c.tile.tm, c.tile.tn), 4 * rr.fabric.rows);
    TilingChoice small;
    ASSERT_TRUE(evaluate_tiling(rr, p.graph, 0, Dataflow::OutputStationary, {64, 64, 0}, 1, 1, small));
    EXPECT_LT(c.cycles, replay_tiling(rr, p.graph, 0, Dataflow::OutputStationary, small));
}

TEST(Tiler, AMatmulTooBigToReplayIsChosenByTheClosedForm) {
    // t64 4096^3: every candidate has hundreds of thousands of ops; the estimate is the
    // closed form's, where 1024^3's is a replay.
    const hw::Config t64 = test::config("t64");
    const Program big = test::compile_matmul(4096, 4096, 4096, t64);
    const TilingChoice c = choose_tiling(t64, big.graph, 0, Dataflow::OutputStationary);
    EXPECT_GT(c.ops, 400'000u);
    TilingChoice closed;
    ASSERT_TRUE(evaluate_tiling(t64, big.graph, 0, Dataflow::OutputStationary, {c.tile.tm, c.tile.tn, 0, 0},
                                c.task_rows, c.task_cols, closed, c.passes));
    EXPECT_EQ(closed.tile, c.tile);
    EXPECT_DOUBLE_EQ(c.cycles, closed.cycles);
    const Program mid = test::compile_matmul(1024, 1024, 1024, t64);
    const TilingChoice m = choose_tiling(t64, mid.graph, 0, Dataflow::OutputStationary);
    ASSERT_TRUE(evaluate_tiling(t64, mid.graph, 0, Dataflow::OutputStationary, {m.tile.tm, m.tile.tn, 0, 0},
                                m.task_rows, m.task_cols, closed, m.passes));
    EXPECT_EQ(closed.tile, m.tile);
    EXPECT_NE(m.cycles, closed.cycles);
    EXPECT_DOUBLE_EQ(m.cycles, replay_tiling(t64, mid.graph, 0, Dataflow::OutputStationary, m));
}

}  // namespace
}  // namespace kpu::compiler
