// Layout ops lowered as copies by the movers (Transpose of any perm, Concat, Slice, Split,
// Gather with constant indices): the copies of a head split and merge, the DRAM traffic
// against its closed form (every output byte read once and written once, the hints equal to
// the bound stream's), chunking to fit a compute tile, the dependencies of a Split's readers,
// the .kpu round trip and what is refused.
#include <gtest/gtest.h>

#include <algorithm>

#include "compiler/binder.h"
#include "compiler/copy_op.h"
#include "compiler/dfx.h"
#include "compiler/kpu_format.h"
#include "compiler/ops/op_schema.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

/// A graph of one op `kind` named "l" over float inputs and int64 constants, outputs y...
std::string layout(const std::string& kind, const std::vector<std::pair<std::string, std::string>>& inputs,
                   const std::string& attributes = "{}", const std::vector<std::string>& outputs = {"y"}) {
    std::string tensors, names, outs;
    for (const auto& [name, spec] : inputs) {
        tensors += (tensors.empty() ? "" : ", ") + std::string(R"({"name": ")") + name + "\", " + spec + "}";
        names += (names.empty() ? "\"" : ", \"") + name + "\"";
    }
    for (const std::string& o : outputs) {
        tensors += R"(, {"name": ")" + o + R"(", "role": "output"})";
        outs += (outs.empty() ? "\"" : ", \"") + o + "\"";
    }
    return R"({"tensors": [)" + tensors + R"(], "ops": [{"op": ")" + kind + R"(", "name": "l", "inputs": [)" + names +
           R"(], "outputs": [)" + outs + R"(], "attributes": )" + attributes + "}]}";
}

std::string input(const std::string& shape) { return R"("shape": )" + shape + R"(, "role": "input")"; }
std::string constant(const std::string& values) {
    return R"("dtype": "int64", "role": "constant", "value": )" + values;
}

/// The graphs every invariant is checked on: each layout op, ragged and odd shapes.
std::vector<std::string> layout_graphs() {
    return {
        layout("Transpose", {{"x", input("[1, 128, 12, 64]")}}, R"({"perm": [0, 2, 1, 3]})"),
        layout("Transpose", {{"x", input("[1, 12, 128, 64]")}}, R"({"perm": [0, 2, 1, 3]})"),
        layout("Transpose", {{"x", input("[3, 5, 7, 2]")}}, R"({"perm": [2, 0, 3, 1]})"),
        layout("Transpose", {{"x", input("[3, 5, 7]")}}, "{}"),
        layout("Transpose", {{"x", input("[300, 2, 400]")}}, R"({"perm": [2, 1, 0]})"),  // chunked blocks
        layout("Transpose", {{"x", input("[700, 3, 256]")}}, R"({"perm": [1, 0, 2]})"),  // chunked rows
        layout("Concat", {{"a", input("[3, 2, 5]")}, {"b", input("[3, 1, 5]")}, {"c", input("[3, 4, 5]")}},
               R"({"axis": -2})"),
        layout("Concat", {{"a", input("[3, 4, 2]")}, {"b", input("[3, 4, 7]")}}, R"({"axis": 2})"),
        layout("Slice",
               {{"x", input("[7, 9, 11]")}, {"s", constant("[-1, 1]")}, {"e", constant("[-100, 100]")},
                {"a", constant("[0, 2]")}, {"st", constant("[-2, 1]")}}),
        layout("Split", {{"x", input("[7, 5]")}, {"split", constant("[2, 4, 1]")}}, "{}", {"y0", "y1", "y2"}),
        layout("Gather", {{"x", input("[11, 6]")}, {"i", constant("[3, -1, 0, 3, 10]")}}),
    };
}

TEST(LayoutLowering, EveryOutputByteIsReadOnceAndWrittenOnceByTheMovers) {
    for (const char* name : {"edge", "t64"})
        for (const std::string& text : layout_graphs()) {
            SCOPED_TRACE(std::string(name) + " " + text);
            const hw::Config config = test::config(name);
            const Program p = compile(parse_graph(text, "t.json"), config);
            const Graph& g = p.graph;
            ASSERT_EQ(p.kernels.size(), 1u);
            // The closed form: DRAM read = DRAM write = the bytes of the outputs.
            uint64_t bytes = 0;
            for (uint32_t t : g.ops()[0].outputs) bytes += g.tensor(t).bytes();
            EXPECT_EQ(p.hints.dram_read_bytes, bytes);
            EXPECT_EQ(p.hints.dram_write_bytes, bytes);
            EXPECT_EQ(p.hints.macs, 0u);
            EXPECT_EQ(count_ops(p), count_expanded_ops(p));
            EXPECT_EQ(count_ops(p).by_kind[int(DfxOpKind::Vector)], 0u) << "no compute";
            uint64_t loaded = 0, stored = 0;
            for_each_op(p, [&](const DfxOp& op) {
                (op.kind == DfxOpKind::Load ? loaded : op.kind == DfxOpKind::Store ? stored : bytes) += op.bytes();
            });
            EXPECT_EQ(loaded, p.hints.dram_read_bytes);
            EXPECT_EQ(stored, p.hints.dram_write_bytes);
            const BoundProgram b = bind(p, config);
            EXPECT_EQ(b.dram_read_bytes, p.hints.dram_read_bytes);
            EXPECT_EQ(b.dram_write_bytes, p.hints.dram_write_bytes);
            // Every piece fits its compute tile with its double buffers.
            const std::vector<BufferSpec> plan = plan_buffers(g, p.kernels[0], {});
            for (hw::Level level : {hw::Level::L2, hw::Level::L3})
                EXPECT_LE(level_bytes(plan, level), level_capacity(config, level)) << to_string(level);
            EXPECT_EQ(read_kpu(write_kpu(p), "t.kpu"), p);
        }
}

// Splitting attention heads, [B, S, H, E] -> [B, H, S, E]: one copy per head, its S rows H
// rows apart in the input's 2D view [B S H, E], contiguous in the output's.
TEST(LayoutLowering, AHeadSplitIsOneStridedCopyPerHead) {
    const Graph g = parse_graph(layout("Transpose", {{"x", input("[1, 128, 12, 64]")}}, R"({"perm": [0, 2, 1, 3]})"),
                                "t.json");
    const uint32_t x = *g.find_tensor("x"), y = *g.find_tensor("y");
    ASSERT_TRUE(is_copy_op(g, g.ops()[0]));
    const std::vector<Copy> copies = copy_list(g, 0);
    ASSERT_EQ(copies.size(), 12u);
    for (uint64_t h = 0; h < 12; ++h) {
        Copy want;
        want.src = x, want.dst = y, want.rows = 128, want.cols = 64;
        want.src_row = h, want.src_step = 12, want.dst_row = 128 * h, want.dst_step = 1;
        EXPECT_EQ(copies[h], want) << h;
    }
    // Merging the heads back, [B, H, S, E] -> [B, S, H, E]: contiguous reads, strided writes.
    const Graph back = parse_graph(layout("Transpose", {{"x", input("[1, 12, 128, 64]")}}, R"({"perm": [0, 2, 1, 3]})"),
                                   "t.json");
    const std::vector<Copy> merged = copy_list(back, 0);
    ASSERT_EQ(merged.size(), 12u);
    for (uint64_t h = 0; h < 12; ++h) {
        EXPECT_EQ(merged[h].src_row, 128 * h);
        EXPECT_EQ(merged[h].src_step, 1u);
        EXPECT_EQ(merged[h].dst_row, h);
        EXPECT_EQ(merged[h].dst_step, 12u);
        EXPECT_EQ(merged[h].rows, 128u);
    }
    // The binder turns the row step into the transfer's DRAM stride: 12 rows of 64 floats.
    const hw::Config edge = test::config("edge");
    const Program p = compile(g, edge);
    const BoundProgram b = bind(p, edge);
    uint64_t strided = 0;
    for (const BoundOp& op : b.ops)
        if (op.kind == BoundOp::Kind::Move && op.engine == EngineKind::Dma && op.move.row_bytes == 64 * 4 &&
            op.move.src_stride % (12 * 64 * 4) == 0)  // a LOAD's slices step several strides
            strided += op.move.bytes();
    EXPECT_EQ(strided, g.tensor(x).bytes()) << "every input byte read by a strided LOAD";
}

// A perm that moves the last axis: per index of the other axes, a block transposed by the
// movers in L2, its rows landing on the output's rows along the axis the last one went to.
TEST(LayoutLowering, APermMovingTheLastAxisTransposesBlocksThroughL2) {
    const Graph g = parse_graph(layout("Transpose", {{"x", input("[3, 5, 7]")}}, R"({"perm": [2, 0, 1]})"), "t.json");
    const std::vector<Copy> copies = copy_list(g, 0);  // y is [7, 3, 5]: its view [21, 5]
    ASSERT_EQ(copies.size(), 3u);
    for (uint64_t a = 0; a < 3; ++a) {
        EXPECT_TRUE(copies[a].transpose);
        EXPECT_EQ(copies[a].src_row, 5 * a);
        EXPECT_EQ(copies[a].src_step, 1u);
        EXPECT_EQ(copies[a].rows, 5u);
        EXPECT_EQ(copies[a].cols, 7u);
        EXPECT_EQ(copies[a].dst_row, a);
        EXPECT_EQ(copies[a].dst_step, 3u);
    }
    const hw::Config edge = test::config("edge");
    const BoundProgram b = bind(compile(g, edge), edge);
    uint64_t transposed = 0;
    for (const BoundOp& op : b.ops)
        if (op.kind == BoundOp::Kind::Move && op.move.transform == hw::Transform::Transpose) {
            EXPECT_EQ(op.engine, EngineKind::BlockMover);
            transposed += op.move.bytes();
        }
    EXPECT_EQ(transposed, 3u * 5 * 7 * 4);
}

// Rows of a large copy go in pieces that fit L3: [700, 3, 256] -> [3, 700, 256] on edge is
// three copies of 700 rows of 1 KiB, more than half of edge's 512 KiB L3 each.
TEST(LayoutLowering, CopiesLargerThanATileGoInPieces) {
    const hw::Config edge = test::config("edge");
    const Program p = compile(
        parse_graph(layout("Transpose", {{"x", input("[700, 3, 256]")}}, R"({"perm": [1, 0, 2]})"), "t.json"), edge);
    const TileShape& t = p.kernels[0].tile;
    EXPECT_EQ(t.tk, 256u) << "whole rows";
    EXPECT_LT(t.tn, 700u);
    EXPECT_LE(2 * uint64_t(t.tn) * t.tk * 4, level_capacity(edge, hw::Level::L3));
    EXPECT_GT(count_ops(p).by_kind[int(DfxOpKind::Load)], 3u);
}

// Each output of a Split is written by the tasks of its part; a reader of one output waits
// for those tasks.
TEST(LayoutLowering, AReaderOfASplitOutputDependsOnTheTasksWritingIt) {
    const char* text = R"({"tensors": [{"name": "x", "shape": [64, 96], "role": "input"},
        {"name": "split", "dtype": "int64", "role": "constant", "value": [16, 80]}, {"name": "a"}, {"name": "b"},
        {"name": "y", "role": "output"}],
      "ops": [{"op": "Split", "name": "sp", "inputs": ["x", "split"], "outputs": ["a", "b"], "attributes": {"axis": 1}},
              {"op": "Relu", "name": "re", "inputs": ["b"], "outputs": ["y"]}]})";
    for (const char* name : {"edge", "t64"}) {
        SCOPED_TRACE(name);
        // -O0: the deps are exactly the producers (plan-memory adds what reuse needs: MemoryPlan.*).
        const Program p = compile(parse_graph(text, "t.json"), test::config(name), CompileOptions(Dataflow::OutputStationary, DepthwiseUnit::Auto, PassSelection{0, {}}));
        ASSERT_EQ(p.kernels.size(), 2u);
        const uint32_t b = *p.graph.find_tensor("b");
        const uint64_t tm = p.kernels[1].tile.tm;
        uint32_t deps = 0;
        for (const Task& t : p.tasks) {
            if (t.kernel != 1) continue;
            const uint64_t r0 = t.r0 * tm, r1 = std::min<uint64_t>(64, t.r1 * tm);  // the rows of b it reads
            for (uint32_t u = 0; u < p.tasks.size(); ++u) {
                if (p.tasks[u].kernel != 0) continue;
                bool writes = false;  // some row of b that this Relu task reads
                const TileShape& s = p.kernels[0].tile;
                for_each_piece(copy_list(p.graph, 0), s.tm, s.tn, s.tk, p.tasks[u].r0, p.tasks[u].r1, p.tasks[u].c0,
                               p.tasks[u].c1, [&](const CopyPiece& piece) {
                                   const Copy& c = piece.copy;
                                   writes = writes || (c.dst == b && c.dst_row < r1 && r0 < c.dst_row + c.rows);
                               });
                const bool dep = std::find(t.deps.begin(), t.deps.end(), u) != t.deps.end();
                EXPECT_EQ(dep, writes) << "task " << u;
                deps += dep;
            }
        }
        EXPECT_GT(deps, 0u);
        EXPECT_EQ(read_kpu(write_kpu(p), "t.kpu"), p);
    }
}

TEST(LayoutLowering, WhatDoesNotLowerYetIsRefusedWithTheReason) {
    const hw::Config edge = test::config("edge");
    const auto error = [&](const std::string& text) {
        return test::error_of([&] { compile(parse_graph(text, "t.json"), edge); });
    };
    const std::string head = "graph: Unsupported operators: ";
    EXPECT_EQ(error(layout("Gather", {{"x", input("[11, 6]")}, {"i", R"("shape": [3], "dtype": "int64", "role": "input")"}})),
              head + "Gather (l: input 'indices' ('i') without an inline value not yet supported (only constant indices))");
    EXPECT_EQ(error(layout("Gather", {{"x", input("[11, 6]")}, {"i", constant("[1, 2]")}}, R"({"axis": 1})")),
              head + "Gather (l: axis = 1 (the last axis) not yet supported (only an axis before the last))");
    EXPECT_EQ(error(layout("Slice", {{"x", input("[7, 9]")}, {"s", constant("[0, 0]")}, {"e", constant("[7, 9]")},
                                     {"a", constant("[0, 1]")}, {"st", constant("[1, 2]")}})),
              head + "Slice (l: steps[1] = 2 on the last axis (1) not yet supported (only 1 there; any step on the "
                     "other axes))");
}

}  // namespace
}  // namespace kpu::compiler
