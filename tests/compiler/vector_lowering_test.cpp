// Vector ops lowered to DFX: the row tiles, the op stream and its counts, the hints against
// the bound stream and the closed form of docs/compiler.md, the .kpu round trip, what does
// not lower yet and a row too long for the target.
#include <gtest/gtest.h>

#include <algorithm>

#include "compiler/binder.h"
#include "compiler/kpu_format.h"
#include "compiler/replay.h"
#include "compiler/tiler.h"
#include "hardware/vector_timing.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

/// y = kind(x [, b]) with x of `shape` and b of `b_shape` ("" for none).
std::string lone(const std::string& kind, const std::string& shape, const std::string& b_shape = "",
                 const std::string& attributes = "{}") {
    const bool has_b = !b_shape.empty();
    return R"({"tensors": [{"name": "x", "shape": )" + shape + R"(, "role": "input"},)" +
           (has_b ? R"({"name": "b", "shape": )" + b_shape + R"(, "role": "input"},)" : std::string()) +
           R"({"name": "y"}], "ops": [{"op": ")" + kind + R"(", "name": "v", "inputs": ["x")" +
           (has_b ? R"(, "b")" : "") + R"(], "outputs": ["y"], "attributes": )" + attributes + "}]}";
}

// The DRAM bytes of the hints are what the bound stream moves and the closed form: x and y
// once, b once if it is a tile or a column, once per task if it is a row or a scalar.
TEST(VectorLowering, HintsEqualTheBoundStreamAndTheClosedForm) {
    struct Case {
        std::string b_shape;
        uint64_t b_per_task, b_once;  // elements
    };
    const uint64_t rows = 3 * 41, cols = 37;
    const Case cases[] = {{"", 0, 0}, {"[3, 41, 37]", 0, rows * cols}, {"[41, 3, 1]", 0, 0},
                          {"[37]", cols, 0},  {"[1, 1]", 1, 0},            {"[3, 41, 1]", 0, rows}};
    for (const char* name : {"minimal", "edge", "t64"}) {
        const hw::Config config = test::config(name);
        for (const Case& c : cases) {
            SCOPED_TRACE(std::string(name) + " b " + c.b_shape);
            const std::string text = c.b_shape.empty() ? lone("Sigmoid", "[3, 41, 37]") : lone("Add", "[3, 41, 37]", c.b_shape);
            if (c.b_shape == "[41, 3, 1]") {  // does not broadcast onto [3, 41, 37]
                EXPECT_NE(test::error_of([&] { parse_graph(text, "t.json"); }), "");
                continue;
            }
            const Program p = compile(parse_graph(text, "t.json"), config);
            const uint64_t tasks = p.tasks.size();
            // Row tiles dealt out in runs of ceil(row tiles / compute tiles), one run per task.
            const uint64_t row_tiles = (rows + p.kernels[0].tile.tm - 1) / p.kernels[0].tile.tm;
            const uint64_t run = (row_tiles + config.compute_tiles - 1) / config.compute_tiles;
            EXPECT_EQ(tasks, (row_tiles + run - 1) / run);
            EXPECT_EQ(p.hints.dram_read_bytes, 4 * (rows * cols + c.b_once + tasks * c.b_per_task));
            EXPECT_EQ(p.hints.dram_write_bytes, 4 * rows * cols);
            const BoundProgram b = bind(p, config);
            EXPECT_EQ(b.dram_read_bytes, p.hints.dram_read_bytes);
            EXPECT_EQ(b.dram_write_bytes, p.hints.dram_write_bytes);
            EXPECT_EQ(count_ops(p), count_expanded_ops(p));
            EXPECT_EQ(read_kpu(write_kpu(p), "t.kpu"), p);
        }
    }
}

// A norm's weight and bias come in once per task; the stream per row tile is LOAD, MOVE,
// VECTOR, MOVE, STORE, the engine working on L2.
TEST(VectorLowering, ANormStreamsRowTilesThroughL2) {
    const std::string text = R"({"tensors": [{"name": "x", "shape": [19, 53], "role": "input"},
        {"name": "w", "shape": [53], "role": "constant"}, {"name": "c", "shape": [53], "role": "constant"},
        {"name": "y"}], "ops": [{"op": "LayerNormalization", "name": "ln", "inputs": ["x", "w", "c"],
        "outputs": ["y"]}]})";
    const hw::Config edge = test::config("edge");
    const Program p = compile(parse_graph(text, "t.json"), edge);
    const uint64_t tasks = p.tasks.size();
    EXPECT_EQ(p.hints.dram_read_bytes, 4 * (19 * 53 + tasks * 2 * 53));
    std::vector<std::string> first_task;
    for_each_op(p, [&](const DfxOp& op) {
        if (op.task == 0) first_task.push_back(to_string(op.kind));
        if (op.kind == DfxOpKind::Vector) {
            EXPECT_EQ(level_of(op.a.buffer), hw::Level::L2);
            EXPECT_EQ(level_of(op.c.buffer), hw::Level::L2);
            EXPECT_EQ(op.n, 53u);
        }
    });
    std::vector<std::string> expected = {"LOAD", "MOVE", "LOAD", "MOVE"};  // weight, bias
    for (uint32_t i = p.tasks[0].r0; i < p.tasks[0].r1; ++i)
        for (const char* kind : {"LOAD", "MOVE", "VECTOR", "MOVE", "STORE"}) expected.push_back(kind);
    EXPECT_EQ(first_task, expected);
}

// A lone vector op takes at least the engine's formula on the busiest compute tile, plus
// the moves in and out of its first and last row tiles.
TEST(VectorLowering, ReplayedCyclesAreBoundedBelowByTheEnginesFormula) {
    for (const char* name : {"edge", "t64"}) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        const Program p = compile(parse_graph(lone("Softmax", "[257, 131]"), "t.json"), config);
        const BoundProgram b = bind(p, config);
        std::vector<uint64_t> per_tile(config.compute_tiles, 0);
        for (const BoundOp& op : b.ops)
            if (op.kind == BoundOp::Kind::Vector) per_tile[op.tile] += hw::vector_cycles(op.vector, config.vector);
        const uint64_t busiest = *std::max_element(per_tile.begin(), per_tile.end());
        EXPECT_GT(busiest, 0u);
        EXPECT_GT(replay_cycles(b, config), double(busiest));
        EXPECT_EQ(p.hints.estimated_cycles, busiest) << "the tiler's estimate is that formula";
    }
}

TEST(VectorLowering, WhatDoesNotLowerYetIsNamed) {
    const hw::Config edge = test::config("edge");
    const auto error = [&](const std::string& text) {
        return test::error_of([&] { compile(parse_graph(text, "t.json"), edge); });
    };
    EXPECT_EQ(error(lone("Softmax", "[4, 6]", "", R"({"axis": 0})")),
              "graph: Unsupported operators: Softmax (v: axis = 0 not yet supported (only the last axis (1)))");
    EXPECT_EQ(error(lone("Add", "[4, 6]", "[4, 1, 6]")),
              "graph: Unsupported operators: Add (v: input 'A' of shape [4, 6] broadcast to [4, 4, 6] not yet "
              "supported)");
    EXPECT_EQ(error(lone("Add", "[2, 4, 6]", "[4, 6]")),
              "graph: Unsupported operators: Add (v: input 'B' of shape [4, 6] broadcast to [2, 4, 6] not yet "
              "supported (only the same shape, a scalar, a row [6] or a column [2, 4, 1]))");
}

// A vector kernel's tile in a .kpu holds whole rows: [tm, cols, 1].
TEST(VectorLowering, AKpuWhoseVectorTileSplitsRowsIsRejected) {
    const Program p = compile(parse_graph(lone("Tanh", "[9, 21]"), "t.json"), test::config("edge"));
    std::string text = write_kpu(p);
    const size_t at = text.find("21", text.find("\"tile\": ["));  // tn, after tm (9 rows: tm < 10)
    ASSERT_NE(at, std::string::npos) << text;
    ASSERT_LT(p.kernels[0].tile.tm, 10u);
    text.replace(at, 2, "7");
    EXPECT_EQ(test::error_of([&] { read_kpu(text, "t.kpu"); }),
              "t.kpu: kernels[0].tile[1]: tn 7 of a vector op must be its cols 21 (the tile is [tm, cols, 1])");
}

TEST(VectorLowering, ARowLongerThanL2IsRefusedWithTheNumbers) {
    const hw::Config minimal = test::config("minimal");
    const std::string message =
        test::error_of([&] { compile(parse_graph(lone("Exp", "[2, 1000000]"), "t.json"), minimal); });
    EXPECT_NE(message.find("op 'v' (Exp): a row of 1000000 elements needs 16000000 bytes of L2"), std::string::npos)
        << message;
    EXPECT_NE(message.find("(rows that long are not yet supported)"), std::string::npos) << message;
}

}  // namespace
}  // namespace kpu::compiler
