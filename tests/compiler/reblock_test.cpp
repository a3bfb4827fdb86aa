// Re-blocking (compiler/reblock.h) and the portable target (compiler/portable_target.h): a
// program tiled for one config binds on every other, with the DRAM bytes of the closed form
// for its sub-tiles and the same bits as its original tiling.
#include "compiler/reblock.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "compiler/portable_target.h"
#include "compiler/tiler.h"
#include "tests/compiler/bound_execution.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

const char* const kShipped[] = {"minimal", "edge", "t64", "datacenter", "roofline-ref"};

Program compile_json(const std::string& json, const hw::Config& target) {
    return compile(parse_graph(json, "test.json"), target);
}

std::string matmul_bias(uint64_t m, uint64_t n, uint64_t k) { return test::matmul_json(m, n, k, true); }

/// Element rows [first, end) and columns of a task of a kernel with `tile` over M x N.
struct Region {
    uint64_t r0, r1, c0, c1;
};
Region region(const Task& t, const TileShape& tile, uint64_t M, uint64_t N) {
    return {uint64_t(t.r0) * tile.tm, std::min<uint64_t>(M, uint64_t(t.r1) * tile.tm), uint64_t(t.c0) * tile.tn,
            std::min<uint64_t>(N, uint64_t(t.c1) * tile.tn)};
}

/// Runs `b` on random inputs (the same for a tensor name whatever the binding) and returns
/// the bits of tensor `out`.
std::vector<uint32_t> run_bits(const BoundProgram& b, const std::string& out) {
    test::Memory mem;
    for (const BoundTensor& t : b.tensors) {
        if (t.role != "input" && t.role != "constant") continue;
        std::mt19937 rng(uint32_t(std::hash<std::string>()(t.name)));
        std::uniform_real_distribution<float> dist(-1.f, 1.f);
        for (uint64_t i = 0; i < t.bytes / 4; ++i) mem.at(t.dram_addr + i * 4) = dist(rng);
    }
    test::execute(b, mem, 99);
    std::vector<uint32_t> bits;
    for (const BoundTensor& t : b.tensors)
        if (t.name == out)
            for (uint64_t i = 0; i < t.bytes / 4; ++i) {
                uint32_t v;
                const float f = mem.at(t.dram_addr + i * 4);
                std::memcpy(&v, &f, 4);
                bits.push_back(v);
            }
    return bits;
}

TEST(Reblock, AProgramThatFitsIsLeftAsItIs) {
    const Program p = test::compile_matmul(256, 256, 512, test::config("minimal"));
    ReblockReport report;
    EXPECT_TRUE(fits_config(p, test::config("t64")));
    EXPECT_EQ(reblock(p, test::config("t64"), &report), p);
    EXPECT_TRUE(report.kernels.empty());
}

TEST(Reblock, SubTilesDivideTheTilesAndCoverEachTaskExactlyInItsPlace) {
    for (const char* from : {"datacenter", "t64", "edge", "roofline-ref"}) {
        SCOPED_TRACE(from);
        const uint64_t M = 130, N = 200, K = 1000;  // ragged edges on every axis
        const Program p = compile_json(matmul_bias(M, N, K), test::config(from));
        const hw::Config& minimal = test::config("minimal");
        ASSERT_FALSE(fits_config(p, minimal));
        ReblockReport report;
        const Program r = reblock(p, minimal, &report);
        EXPECT_TRUE(fits_config(r, minimal));
        ASSERT_EQ(report.kernels.size(), 1u);
        EXPECT_EQ(report.config, "minimal");
        const TileShape &a = p.kernels[0].tile, &b = r.kernels[0].tile;
        EXPECT_EQ(report.kernels[0].from, a);
        EXPECT_EQ(report.kernels[0].to, b);
        EXPECT_EQ(r.kernels[0].dataflow, p.kernels[0].dataflow);
        EXPECT_EQ(a.tm % b.tm, 0u);
        EXPECT_EQ(a.tn % b.tn, 0u);
        EXPECT_EQ(b.kc % b.tk, 0u);                 // passes are whole K chunks
        EXPECT_LE(b.pass_k(K), a.pass_k(K));        // more K passes, never fewer
        EXPECT_EQ(r.target, target_of(minimal));
        // Each original task's sub-tasks follow each other, in its place, and tile its region.
        uint32_t next = 0;
        for (const Task& t : p.tasks) {
            const Region whole = region(t, a, M, N);
            uint64_t covered = 0;
            while (next < r.tasks.size()) {
                const Region s = region(r.tasks[next], b, M, N);
                if (s.r0 < whole.r0 || s.r1 > whole.r1 || s.c0 < whole.c0 || s.c1 > whole.c1) break;
                covered += (s.r1 - s.r0) * (s.c1 - s.c0);
                ++next;
            }
            EXPECT_EQ(covered, (whole.r1 - whole.r0) * (whole.c1 - whole.c0));
        }
        EXPECT_EQ(next, r.tasks.size());
        test::expect_consistent(r, minimal);  // bytes = hints, op counts, .kpu round trip (which checks deps)
    }
}

TEST(Reblock, DramBytesEqualTheClosedFormForTheSubTiles) {
    const uint64_t M = 512, N = 512, K = 2048;
    const Program p = compile_json(matmul_bias(M, N, K), test::config("t64"));
    const hw::Config& minimal = test::config("minimal");
    const Program r = reblock(p, minimal);
    // Every sub-task reads its rows of A, its columns of B and of the bias, all of K; writes its C.
    uint64_t read = 0, write = 0;
    for (const Task& t : r.tasks) {
        const Region s = region(t, r.kernels[0].tile, M, N);
        read += 4 * ((s.r1 - s.r0) * K + K * (s.c1 - s.c0) + (s.c1 - s.c0));
        write += 4 * (s.r1 - s.r0) * (s.c1 - s.c0);
    }
    EXPECT_EQ(write, 4 * M * N);
    EXPECT_EQ(r.hints.dram_read_bytes, read);
    EXPECT_EQ(r.hints.dram_write_bytes, write);
    const BoundProgram b = bind(p, minimal);  // bind() re-blocks by itself
    EXPECT_EQ(b.dram_read_bytes, read);
    EXPECT_EQ(b.dram_write_bytes, write);
    EXPECT_EQ(b.macs, M * N * K);
}

TEST(Reblock, AReblockedProgramComputesTheSameBitsAsItsOriginalTiling) {
    // One task of 96x32 tiles and all of K, re-blocked to half tiles, short chunks and K passes
    // (the partial sums round-trip through L3): each C element's sum keeps its order.
    const std::string json = matmul_bias(96, 160, 640);
    for (const char* from : {"roofline-ref", "datacenter"}) {
        SCOPED_TRACE(from);
        const Program p = compile_json(json, test::config(from));
        const BoundProgram home = bind(p, test::config(from));
        const BoundProgram away = bind(p, test::config("minimal"));
        ASSERT_NE(away.ops.size(), home.ops.size());  // re-blocked
        EXPECT_EQ(run_bits(away, "C"), run_bits(home, "C"));
    }
}

/// C = relu((A @ W + b) * s + r) as the fused matmul's own keys: the drain epilogue's scale and residual.
std::string epilogue_json(uint64_t m, uint64_t n, uint64_t k) {
    auto s = [](uint64_t v) { return std::to_string(v); };
    return R"({"tensors": [
      {"name": "A", "shape": [)" + s(m) + ", " + s(k) + R"(], "role": "input"},
      {"name": "W", "shape": [)" + s(k) + ", " + s(n) + R"(], "role": "constant"},
      {"name": "b", "shape": [)" + s(n) + R"(], "role": "constant"},
      {"name": "s", "shape": [)" + s(n) + R"(], "role": "constant"},
      {"name": "r", "shape": [)" + s(m) + ", " + s(n) + R"(], "role": "input"},
      {"name": "C", "shape": [)" + s(m) + ", " + s(n) + R"(], "role": "output"}],
      "ops": [{"op": "matmul", "name": "mm", "A": "A", "B": "W", "C": "C", "bias": "b", "scale": "s",
               "residual": "r", "activation": "relu"}]})";
}

// The residual tile and the scale row re-block with C: on minimal each sub-task reads its
// rows x columns of the residual and its columns of the scale once, and the bits are home's.
TEST(Reblock, AFusedResidualMatmulReblocksToTheSameBitsAndClosedForm) {
    const uint64_t M = 96, N = 160, K = 640;
    const hw::Config& minimal = test::config("minimal");
    for (const char* from : {"roofline-ref", "datacenter"}) {
        SCOPED_TRACE(from);
        const Program p = compile_json(epilogue_json(M, N, K), test::config(from));
        ASSERT_FALSE(fits_config(p, minimal)) << "the case re-blocks nothing";
        const Program r = reblock(p, minimal);
        uint64_t read = 0, write = 0;
        for (const Task& t : r.tasks) {
            const Region g = region(t, r.kernels[0].tile, M, N);
            const uint64_t rows = g.r1 - g.r0, cols = g.c1 - g.c0;
            read += 4 * (rows * K + K * cols + 2 * cols + rows * cols);
            write += 4 * rows * cols;
        }
        EXPECT_EQ(r.hints.dram_read_bytes, read);
        EXPECT_EQ(r.hints.dram_write_bytes, write);
        const BoundProgram away = test::expect_consistent(r, minimal);
        EXPECT_EQ(away.dram_read_bytes, read);
        EXPECT_EQ(away.dram_write_bytes, write);
        EXPECT_EQ(run_bits(away, "C"), run_bits(bind(p, test::config(from)), "C"));
    }
}

TEST(Reblock, AProgramForDatacenterRunsOnMinimal) {
    const Program p = compile_json(test::mlp_json(256, 512, 1024, 256), test::config("datacenter"));
    ReblockReport report;
    const Program r = reblock(p, test::config("minimal"), &report);
    EXPECT_FALSE(report.kernels.empty());
    const BoundProgram b = test::expect_consistent(r, test::config("minimal"));
    EXPECT_EQ(run_bits(b, "y"), run_bits(bind(p, test::config("datacenter")), "y"));
}

// Fused kernels re-block too: an FFN fused on roofline-ref (one row block of all 256 rows, its
// hidden in 4 MiB of L3) and an attention fused on datacenter run on minimal with smaller
// row, key and K blocks; the FFN gives the same bits (its K chunks add in the same order).
TEST(Reblock, FusedKernelsReblockTheirRowAndKeyBlocks) {
    const hw::Config& minimal = test::config("minimal");
    const Program ffn = compile_json(test::mlp_json(256, 256, 512, 128), test::config("roofline-ref"));
    ASSERT_EQ(ffn.graph.ops().back().kind, "ffn");
    ASSERT_FALSE(fits_config(ffn, minimal));
    ReblockReport report;
    const Program r = reblock(ffn, minimal, &report);
    ASSERT_EQ(report.kernels.size(), 1u) << describe(report);
    EXPECT_EQ(report.kernels[0].op_class, "ffn");
    EXPECT_EQ(report.kernels[0].from.tm % report.kernels[0].to.tm, 0u);
    EXPECT_TRUE(fits_config(r, minimal));
    EXPECT_EQ(run_bits(test::expect_consistent(r, minimal), "y"), run_bits(bind(ffn, test::config("roofline-ref")), "y"));

    const Program att = compile_json(R"({"tensors": [{"name": "q", "shape": [1, 2, 512, 64], "role": "input"},
        {"name": "k", "shape": [1, 2, 512, 64], "role": "input"}, {"name": "v", "shape": [1, 2, 512, 64], "role": "input"},
        {"name": "y", "role": "output"}],
      "ops": [{"op": "Attention", "name": "att", "inputs": ["q", "k", "v"], "outputs": ["y"]}]})",
                                     test::config("datacenter"));
    ASSERT_EQ(att.graph.ops()[0].kind, "flash_attention");
    ASSERT_FALSE(fits_config(att, minimal)) << "datacenter's blocks fit minimal: the case re-blocks nothing";
    const Program ra = reblock(att, minimal, &report);
    ASSERT_EQ(report.kernels.size(), 1u) << describe(report);
    EXPECT_EQ(report.kernels[0].op_class, "flash_attention");
    EXPECT_TRUE(fits_config(ra, minimal));
    for (const Task& t : ra.tasks) EXPECT_EQ(t.r1 - t.r0, 1u);  // one query block per task
    test::expect_consistent(ra, minimal);
}

TEST(Reblock, AConvolutionWhoseInputRowsOutgrowL3IsCutIntoSubTasks) {
    // roofline-ref (4 MiB of L3, one compute tile) gives each task many output rows: their
    // input rows (96 x 64 floats each, 24 KiB) do not fit minimal's 256 KiB of L3 together.
    const Program p = compile_json(R"({"tensors": [{"name": "x", "shape": [1, 64, 96, 96], "role": "input"},
        {"name": "w", "shape": [64, 64, 3, 3], "role": "input"}, {"name": "y", "role": "output"}],
      "ops": [{"op": "Conv", "name": "conv", "inputs": ["x", "w"], "outputs": ["y"],
               "attributes": {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}}]})",
                                   test::config("roofline-ref"));
    const hw::Config& minimal = test::config("minimal");
    ReblockReport report;
    const Program r = reblock(p, minimal, &report);
    const auto conv = std::find_if(report.kernels.begin(), report.kernels.end(),
                                   [](const ReblockedKernel& k) { return k.op_class == "conv"; });
    ASSERT_NE(conv, report.kernels.end()) << describe(report);
    EXPECT_GT(conv->tasks_to, conv->tasks_from);
    EXPECT_EQ(conv->from.tm % conv->to.tm, 0u);
    EXPECT_TRUE(fits_config(r, minimal));
    const BoundProgram b = test::expect_consistent(r, minimal);
    EXPECT_EQ(b.macs, p.hints.macs);
}

TEST(Reblock, VectorOpsReblockTheirRowTilesAndCopyOpsTheirPieces) {
    // A softmax whose row tiles of 2048 columns fill edge's L2, and a Concat whose pieces fill
    // its L3: minimal holds fewer rows and smaller pieces.
    const std::string json = R"({"tensors": [{"name": "x", "shape": [512, 2048], "role": "input"},
        {"name": "z", "shape": [512, 2048], "role": "input"}, {"name": "s"}, {"name": "y"}],
      "ops": [{"op": "Softmax", "name": "softmax", "inputs": ["x"], "outputs": ["s"]},
              {"op": "Concat", "name": "concat", "inputs": ["s", "z"], "outputs": ["y"], "attributes": {"axis": 0}}]})";
    const Program p = compile_json(json, test::config("edge"));
    const hw::Config& minimal = test::config("minimal");
    ReblockReport report;
    const Program r = reblock(p, minimal, &report);
    std::map<std::string, ReblockedKernel> by_class;
    for (const ReblockedKernel& k : report.kernels) by_class[k.op_class] = k;
    ASSERT_TRUE(by_class.count("vector")) << describe(report);
    const ReblockedKernel& v = by_class["vector"];
    EXPECT_LT(v.to.tm, v.from.tm);  // on every task boundary: expect_consistent reads the tasks back
    EXPECT_TRUE(vector_tile_fits(minimal, r.graph, vector_operands(r.graph, r.kernels[v.kernel].op), v.to.tm));
    EXPECT_NE(describe(report).find("op 'softmax': row tiles of " + std::to_string(v.from.tm) +
                                    " rows re-blocked to " + std::to_string(v.to.tm) + " rows for minimal: "),
              std::string::npos)
        << describe(report);
    ASSERT_TRUE(by_class.count("copy")) << describe(report);
    {
        const ReblockedKernel& c = by_class["copy"];
        EXPECT_EQ(c.from.tn % c.to.tn, 0u);
        EXPECT_LE(uint64_t(c.to.tn) * c.to.tk, uint64_t(c.from.tn) * c.from.tk);
    }
    test::expect_consistent(r, minimal);
}

TEST(Reblock, WhatCannotFitEvenReblockedIsRefusedWithTensorLevelAndNumbers) {
    // One row of 16384 floats is 64 KiB: with its double buffers in and out, four times
    // minimal's L2, whatever the row tiles.
    const Program p = compile_json(R"({"tensors": [{"name": "x", "shape": [64, 16384], "role": "input"}, {"name": "y"}],
        "ops": [{"op": "Softmax", "name": "softmax", "inputs": ["x"], "outputs": ["y"]}]})",
                                   test::config("datacenter"));
    EXPECT_EQ(test::error_of([&] { bind(p, test::config("minimal")); }),
              "cannot bind op 'softmax' to config 'minimal': tensor 'x' needs 2 x 65536 bytes in L2.a; L2 needs "
              "262144 bytes per compute tile in total but has 65536");
}

TEST(Reblock, EveryShippedConfigHoldsThePortableTargetsMemories) {
    const hw::Config portable = portable_target();
    EXPECT_EQ(portable.name, kPortableTargetName);
    for (const char* name : kShipped)
        for (hw::Level level : {hw::Level::L3, hw::Level::L2, hw::Level::L1})
            EXPECT_LE(level_capacity(portable, level), level_capacity(test::config(name), level))
                << name << " " << hw::to_string(level);
}

TEST(Reblock, EveryShippedConfigBindsTheExamplesCompiledForThePortableTargetAsTheyAre) {
    const hw::Config portable = portable_target();
    for (const auto& entry : std::filesystem::directory_iterator(std::string(KPU_SOURCE_DIR) + "/examples")) {
        if (entry.path().extension() != ".json") continue;
        SCOPED_TRACE(entry.path().filename().string());
        const Program p = compile(load_graph(entry.path().string()), portable);
        for (const char* name : kShipped) EXPECT_TRUE(fits_config(p, test::config(name))) << name;
    }
}

TEST(Reblock, TheExamplesCompiledForEachShippedConfigBindOnEveryOther) {
    // The compile-time half of the 5 x 5 matrix (the runs: scripts/portability-matrix).
    for (const char* example : {"mlp.json", "matmul_1024x1024x512.json", "ffn_block.json"}) {
        const Graph graph = load_graph(std::string(KPU_SOURCE_DIR) + "/examples/" + example);
        for (const char* from : kShipped) {
            const Program p = compile(graph, test::config(from));
            for (const char* to : kShipped) {
                SCOPED_TRACE(std::string(example) + " " + from + " -> " + to);
                const Program r = reblock(p, test::config(to));
                EXPECT_TRUE(fits_config(r, test::config(to)));
                const BoundProgram b = bind(p, test::config(to));
                EXPECT_EQ(b.dram_read_bytes, r.hints.dram_read_bytes);
                EXPECT_EQ(b.dram_write_bytes, r.hints.dram_write_bytes);
                EXPECT_EQ(b.macs, p.hints.macs);
            }
        }
    }
}

}  // namespace
}  // namespace kpu::compiler
