// keep-in-l3 (compiler/keep_in_l3.h): which intermediates go to L3, where, what the binder
// moves for them and what DRAM bytes remain, each against a plain evaluation of the rules.
#include <algorithm>

#include "compiler/keep_in_l3.h"
#include "compiler/kpu_format.h"
#include "compiler/memory_plan.h"
#include "compiler/reblock.h"
#include "compiler/ops/op_schema.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler::test {
namespace {

/// plan-memory, and keep-in-l3 (level 3) when `keep`: no other pass changes the kernels.
CompileOptions planned(bool keep) {
    PassSelection passes;
    passes.level = kMaxOptLevel;
    for (const auto& [pass, name] : kPassNames)
        if (pass != Pass::PlanMemory && (pass != Pass::KeepInL3 || !keep)) passes.disabled.push_back(pass);
    return {Dataflow::OutputStationary, DepthwiseUnit::Auto, passes};
}

TEST(KeepInL3, AChainsIntermediatesStayOnChipAndDramDropsByTheirWriteAndRead) {
    const hw::Config t64 = config("t64");
    const Graph g = relu_chain(5, 64, 256);  // 64 KiB each: a row of 1 KiB on each of 64 tiles
    const uint64_t bytes = 64 * 256 * 4;
    const Program off = compile(g, t64, planned(false));
    const Program on = compile(g, t64, planned(true));
    ASSERT_EQ(on.passes, (std::vector<Pass>{Pass::PlanMemory, Pass::KeepInL3}));
    ASSERT_TRUE(on.memory.has_value());
    EXPECT_EQ(on.memory->l3_capacity, t64.l3.capacity_bytes);
    const L3Plan plan = program_l3_plan(on);
    EXPECT_EQ(plan.count, 4u);
    for (const char* name : {"t0", "t1", "t2", "t3"}) EXPECT_TRUE(plan.resident[*on.graph.find_tensor(name)]) << name;
    for (const char* name : {"x", "y"}) EXPECT_FALSE(plan.resident[*on.graph.find_tensor(name)]) << name;
    // Each Relu reads its input once and writes its output once: four intermediates, each
    // one write and one read less.
    EXPECT_EQ(off.hints.dram_read_bytes, 5 * bytes);
    EXPECT_EQ(off.hints.dram_write_bytes, 5 * bytes);
    EXPECT_EQ(on.hints.dram_read_bytes, off.hints.dram_read_bytes - 4 * bytes);
    EXPECT_EQ(on.hints.dram_write_bytes, off.hints.dram_write_bytes - 4 * bytes);
    const BoundProgram b = expect_consistent(on, t64);  // the bound moves: the hints' bytes
    // The DRAM plan holds x and y only, live at the two ends: they share one range.
    EXPECT_EQ(on.memory->dram, bytes);
    EXPECT_EQ(on.memory->activations, bytes);
    // Every move of an intermediate is L3 to L3: the kernel's buffer at the bottom, the band in
    // the top two bands' bytes (t0 and t1 are live together, t2 reuses t0's range).
    const hw::AddressMap map(t64);
    uint64_t l3_moves = 0;
    for (const BoundOp& op : b.ops) {
        if (op.kind != BoundOp::Kind::Move || op.engine != EngineKind::Dma) continue;
        hw::Location src, dst;
        ASSERT_TRUE(map.decode(op.move.src, 1, src));
        ASSERT_TRUE(map.decode(op.move.dst, 1, dst));
        if (src.level != hw::Level::L3 || dst.level != hw::Level::L3) continue;
        ++l3_moves;
        EXPECT_GE(std::max(src.offset, dst.offset), t64.l3.capacity_bytes - 2 * 1024) << "op " << op.id;
        EXPECT_LE(std::max(src.offset, dst.offset) + op.move.row_bytes, t64.l3.capacity_bytes) << "op " << op.id;
    }
    EXPECT_GT(l3_moves, 0u);
}

TEST(KeepInL3, LiveResidentsDoNotOverlapAndStayAboveTheKernelsBuffers) {
    const hw::Config t64 = config("t64");
    CompileOptions two_kernels;  // -O3 less fuse-ffn: h between the two matmuls
    two_kernels.passes.level = kMaxOptLevel;
    two_kernels.passes.disabled.push_back(Pass::FuseFfn);
    const Program p = compile(parse_graph(mlp_json(64, 256, 512, 256), "mlp.json"), t64, two_kernels);
    const L3Plan plan = program_l3_plan(p);
    ASSERT_EQ(plan.count, 1u);  // h
    const uint32_t h = *p.graph.find_tensor("h");
    ASSERT_TRUE(plan.resident[h]);
    const std::vector<Lifetime> life = tensor_lifetimes(p.graph);
    const std::vector<TaskExtent> extents = max_task_extents(p);
    for (uint32_t k = 0; k < p.kernels.size(); ++k)
        if (life[h].first <= k + 1 && k + 1 <= life[h].last)
            EXPECT_LE(level_bytes(plan_buffers(p.graph, p.kernels[k], extents[k]), hw::Level::L3), plan.offset[h]);
    expect_consistent(p, t64);
    // A chain of many: no two residents live at once share a byte of a tile.
    const Program c = compile(relu_chain(12, 64, 256), t64, planned(true));
    const L3Plan q = program_l3_plan(c);
    const std::vector<Lifetime> cl = tensor_lifetimes(c.graph);
    const uint64_t band = 1024;  // a row of 1 KiB per tile
    for (uint32_t a = 0; a < c.graph.tensors().size(); ++a)
        for (uint32_t b = a + 1; b < c.graph.tensors().size(); ++b)
            if (q.resident[a] && q.resident[b] && cl[a].overlaps(cl[b]))
                EXPECT_TRUE(q.offset[a] + band <= q.offset[b] || q.offset[b] + band <= q.offset[a])
                    << c.graph.tensor(a).name << " and " << c.graph.tensor(b).name;
}

TEST(KeepInL3, AProgramWhereNothingFitsIsUnchanged) {
    const hw::Config minimal = config("minimal");  // one tile, 256 KiB of L3: a 1 MiB band does not fit
    const Graph g = relu_chain(3, 256, 1024);
    const Program off = compile(g, minimal, planned(false));
    const Program on = compile(g, minimal, planned(true));
    EXPECT_EQ(on, off);
    EXPECT_EQ(on.passes, std::vector<Pass>{Pass::PlanMemory});
}

TEST(KeepInL3, TheKpuRecordsTheCapacityAndTheReaderChecksIt) {
    const hw::Config t64 = config("t64");
    const Program p = compile(relu_chain(4, 64, 256), t64, planned(true));
    const std::string text = write_kpu(p);
    EXPECT_EQ(read_kpu(text, "p.kpu"), p);
    // Without the capacity the hints no longer match the op stream's DRAM bytes.
    std::string no_capacity = text;
    const std::string key = "\"l3_capacity\": " + std::to_string(t64.l3.capacity_bytes);
    ASSERT_NE(no_capacity.find(key), std::string::npos);
    no_capacity.replace(no_capacity.find(key), key.size(), "\"l3_capacity\": 0");
    EXPECT_THROW(read_kpu(no_capacity, "p.kpu"), CompileError);
    // A capacity that keeps nothing is refused by name.
    std::string tiny = text;
    tiny.replace(tiny.find(key), key.size(), "\"l3_capacity\": 64");
    try {
        read_kpu(tiny, "p.kpu");
        FAIL() << "read a keep-in-l3 program whose L3 keeps nothing";
    } catch (const CompileError& e) {
        EXPECT_NE(std::string(e.what()).find("memory.l3_capacity"), std::string::npos) << e.what();
    }
}

TEST(KeepInL3, BoundToASmallerL3TheResidentsGoToDram) {
    const hw::Config t64 = config("t64");
    const Graph g = relu_chain(4, 64, 256);
    const Program p = compile(g, t64, planned(true));
    hw::Config small = t64;
    small.l3.capacity_bytes /= 2;
    EXPECT_FALSE(l3_plan_holds(p, small));
    const Program r = reblock(p, small);  // what bind() runs: the pass undone
    EXPECT_EQ(r.passes, std::vector<Pass>{Pass::PlanMemory});
    const Program off = compile(g, t64, planned(false));
    EXPECT_EQ(r.hints.dram_read_bytes, off.hints.dram_read_bytes);
    EXPECT_EQ(r.hints.dram_write_bytes, off.hints.dram_write_bytes);
    const BoundProgram b = bind(p, small);
    for (const BoundTensor& t : b.tensors) EXPECT_FALSE(t.in_l3) << t.name;
    EXPECT_EQ(b.dram_read_bytes, off.hints.dram_read_bytes);
    EXPECT_EQ(b.dram_write_bytes, off.hints.dram_write_bytes);
    EXPECT_EQ(read_kpu(write_kpu(r), "r.kpu"), r);
}

}  // namespace
}  // namespace kpu::compiler::test
