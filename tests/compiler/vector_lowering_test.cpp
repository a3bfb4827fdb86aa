// Vector ops lowered to DFX: the row tiles, the op stream and its counts, the hints against
// the bound stream and the closed form of docs/compiler.md, the .kpu round trip, what does
// not lower yet and a row too long for the target.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <utility>

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

/// y = kind(x, axes) with x of `shape`, the int64 axes inline (`axes` "" for none).
std::string reduce(const std::string& kind, const std::string& shape, const std::string& axes,
                   const std::string& attributes = "{}") {
    const bool has_axes = !axes.empty();
    return R"({"tensors": [{"name": "x", "shape": )" + shape + R"(, "role": "input"},)" +
           (has_axes ? R"({"name": "axes", "dtype": "int64", "role": "constant", "value": )" + axes + "}," : "") +
           R"({"name": "y"}], "ops": [{"op": ")" + kind + R"(", "name": "r", "inputs": ["x")" +
           (has_axes ? R"(, "axes")" : "") + R"(], "outputs": ["y"], "attributes": )" + attributes + "}]}";
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
            test::expect_consistent(p, config);
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
    EXPECT_EQ(error(lone("Add", "[4, 6]", "[4, 1, 6]")),
              "graph: Unsupported operators: Add (v: input 'A' of shape [4, 6] broadcast to [4, 4, 6] not yet "
              "supported)");
    EXPECT_EQ(error(lone("Add", "[2, 4, 6]", "[4, 6]")),
              "graph: Unsupported operators: Add (v: input 'B' of shape [4, 6] broadcast to [2, 4, 6] not yet "
              "supported (only the same shape, a scalar, a row [6] or a column [2, 4, 1]))");
    EXPECT_EQ(error(lone("Clip", "[4, 6]", "[]")),
              "graph: Unsupported operators: Clip (v: input 'min' ('b') without an inline value not yet supported "
              "(only a constant bound))");
    // The int64 axes pass; an int64 data tensor does not.
    const std::string int_data = R"({"tensors": [{"name": "x", "shape": [4, 6], "dtype": "int64", "role": "input"},
        {"name": "axes", "dtype": "int64", "role": "constant", "value": [-1]}, {"name": "y"}],
        "ops": [{"op": "ReduceSum", "name": "r", "inputs": ["x", "axes"], "outputs": ["y"]}]})";
    EXPECT_EQ(error(int_data), "graph: Unsupported operators: ReduceSum (r: tensor 'x' is int64, not yet supported)");
}

// A reduction over the last axis reads x once and writes one value per row; its int64 axes
// are read by the compiler and get no DRAM buffer.
TEST(VectorLowering, ReductionsOverTheLastAxisMoveXOnceAndOneValuePerRow) {
    struct Case {
        std::string kind, shape, axes, attributes;
        uint64_t rows, cols;
        hw::VectorFunction function;
    };
    const Case cases[] = {
        {"ReduceSum", "[3, 41, 37]", "[-1]", "{}", 3 * 41, 37, hw::VectorFunction::ReduceSum},
        {"ReduceMean", "[3, 41, 37]", "[2]", R"({"keepdims": 0})", 3 * 41, 37, hw::VectorFunction::ReduceMean},
        {"ReduceMax", "[131]", "", R"({"keepdims": 0})", 1, 131, hw::VectorFunction::ReduceMax},
        {"ReduceMax", "[1, 1]", "[-1]", "{}", 1, 1, hw::VectorFunction::ReduceMax},
        {"ReduceSum", "[2, 3, 1]", "[-1]", R"({"keepdims": 0})", 6, 1, hw::VectorFunction::ReduceSum},
        {"ReduceMean", "[]", "", "{}", 1, 1, hw::VectorFunction::ReduceMean},
        {"ReduceSum", "[7, 13]", "", R"({"noop_with_empty_axes": 1})", 7, 13, hw::VectorFunction::Copy},
    };
    for (const char* name : {"minimal", "edge", "t64"}) {
        const hw::Config config = test::config(name);
        for (const Case& c : cases) {
            SCOPED_TRACE(std::string(name) + " " + c.kind + " " + c.shape + " axes " + c.axes + " " + c.attributes);
            const Program p = compile(parse_graph(reduce(c.kind, c.shape, c.axes, c.attributes), "t.json"), config);
            const uint64_t y_cols = c.function == hw::VectorFunction::Copy ? c.cols : 1;
            EXPECT_EQ(p.hints.dram_read_bytes, 4 * c.rows * c.cols);
            EXPECT_EQ(p.hints.dram_write_bytes, 4 * c.rows * y_cols);
            const BoundProgram b = bind(p, config);
            EXPECT_EQ(b.dram_read_bytes, p.hints.dram_read_bytes);
            EXPECT_EQ(b.dram_write_bytes, p.hints.dram_write_bytes);
            EXPECT_EQ(b.tensors.size(), 2u) << "x and y; the axes are no DRAM tensor";
            uint64_t rows = 0;
            for (const BoundOp& op : b.ops)
                if (op.kind == BoundOp::Kind::Vector) {
                    EXPECT_EQ(op.vector.function, c.function);
                    EXPECT_EQ(op.vector.cols, c.cols);
                    EXPECT_EQ(op.vector.y.ld, y_cols);
                    rows += op.vector.rows;
                }
            EXPECT_EQ(rows, c.rows);
            EXPECT_EQ(count_ops(p), count_expanded_ops(p));
            EXPECT_EQ(read_kpu(write_kpu(p), "t.kpu"), p);
        }
    }
}

// Clip's constant bounds are the command's; an omitted one is no bound.
TEST(VectorLowering, ClipTakesItsConstantBoundsIntoTheCommand) {
    const std::string text = R"({"tensors": [{"name": "x", "shape": [5, 3, 19], "role": "input"},
        {"name": "hi", "role": "constant", "value": 0.75}, {"name": "y"}],
        "ops": [{"op": "Clip", "name": "c", "inputs": ["x", "", "hi"], "outputs": ["y"]}]})";
    const hw::Config edge = test::config("edge");
    const Program p = compile(parse_graph(text, "t.json"), edge);
    EXPECT_EQ(p.hints.dram_read_bytes, 4u * 5 * 3 * 19);
    EXPECT_EQ(p.hints.dram_write_bytes, 4u * 5 * 3 * 19);
    const BoundProgram b = bind(p, edge);
    EXPECT_EQ(b.dram_read_bytes, p.hints.dram_read_bytes);
    EXPECT_EQ(b.tensors.size(), 2u) << "x and y; the bound is no DRAM tensor";
    for (const BoundOp& op : b.ops)
        if (op.kind == BoundOp::Kind::Vector) {
            EXPECT_EQ(op.vector.function, hw::VectorFunction::Clip);
            EXPECT_EQ(op.vector.clip_min, -std::numeric_limits<float>::infinity());
            EXPECT_EQ(op.vector.clip_max, 0.75f);
        }
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
        test::error_of([&] { compile(parse_graph(lone("Softmax", "[2, 1000000]"), "t.json"), minimal); });
    EXPECT_NE(message.find("op 'v' (Softmax): a row of 1000000 elements of tensor 'x' needs 16000000 bytes of L2"), std::string::npos)
        << message;
    // An elementwise row of prime length has no shorter rows to run on (long_rows.h).
    const std::string prime =
        test::error_of([&] { compile(parse_graph(lone("Exp", "[2, 1000003]"), "t.json"), minimal); });
    EXPECT_NE(prime.find("op 'v' (Exp): a row of 1000003 elements of tensor 'x' needs 16000256 bytes of L2"), std::string::npos)
        << prime;
    EXPECT_NE(message.find("(rows that long are not yet supported)"), std::string::npos) << message;
}

}  // namespace
}  // namespace kpu::compiler
