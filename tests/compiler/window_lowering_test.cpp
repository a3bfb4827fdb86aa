// The window ops (MaxPool, AveragePool, depthwise_conv, Resize) lowered onto the vector
// engine, and the composites GlobalAveragePool and BatchNormalization: the hints against the
// bound stream and docs/compiler.md's closed forms, the op stream of a task, the expansions,
// the tiler's estimate, and the messages for bad input and for what does not lower.
#include <gtest/gtest.h>

#include "compiler/ops/window.h"
#include "compiler/tiler.h"
#include "hardware/vector_timing.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

std::string dims(const std::vector<uint64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

/// y = kind(x [, extra inputs]) with x of `shape`; `extra` are more tensor declarations and
/// `inputs` the op's input list after "x".
std::string window_graph(const std::string& kind, const std::vector<uint64_t>& shape, const std::string& attributes,
                         const std::string& extra = "", const std::string& inputs = "") {
    return R"({"tensors": [{"name": "x", "shape": )" + dims(shape) + R"(, "role": "input"},)" + extra +
           R"({"name": "y"}], "ops": [{"op": ")" + kind + R"(", "name": "v", "inputs": ["x")" + inputs +
           R"(], "outputs": ["y"], "attributes": )" + attributes + "}]}";
}

std::string depthwise_graph(const std::vector<uint64_t>& x, uint64_t k, bool bias, const std::string& attributes) {
    const std::string c = std::to_string(x[1]), ks = std::to_string(k);
    return window_graph("depthwise_conv", x, attributes,
                        R"({"name": "w", "shape": [)" + c + ", 1, " + ks + ", " + ks + R"(], "role": "constant"},)" +
                            (bias ? R"({"name": "b", "shape": [)" + c + R"(], "role": "constant"},)" : ""),
                        bias ? R"(, "w", "b")" : R"(, "w")");
}

std::string resize_graph(const std::vector<uint64_t>& x, const std::string& scales, const std::string& attributes = "{}") {
    return window_graph("Resize", x, attributes,
                        R"({"name": "scales", "shape": [4], "role": "constant", "value": )" + scales + "},",
                        R"(, "", "scales")");
}

uint64_t tasks_of(const Program& p, uint32_t kernel) {
    uint64_t n = 0;
    for (const Task& t : p.tasks) n += t.kernel == kernel;
    return n;
}

// x is read once and y written once; a depthwise_conv's weight (C kH kW) and bias (C) come
// in once per task: dram_read = 4 (N C H W + P (C kH kW + C)), dram_write = 4 N C OH OW.
TEST(WindowLowering, HintsEqualTheBoundStreamAndTheClosedForm) {
    struct Case {
        std::string text;
        std::vector<uint64_t> x, y;
        uint64_t per_task;  // weight and bias elements
    };
    const std::vector<Case> cases = {
        {window_graph("MaxPool", {3, 4, 9, 7}, R"({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})"),
         {3, 4, 9, 7}, {3, 4, 5, 4}, 0},
        {window_graph("MaxPool", {1, 3, 11, 13}, R"({"kernel_shape": [3, 3], "dilations": [2, 2], "pads": [0, 1, 1, 0]})"),
         {1, 3, 11, 13}, {1, 3, 8, 10}, 0},
        {window_graph("AveragePool", {1, 2, 9, 7},
                      R"({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1})"),
         {1, 2, 9, 7}, {1, 2, 5, 4}, 0},
        {depthwise_graph({2, 6, 11, 12}, 3, true, R"({"strides": [2, 2], "pads": [1, 1, 1, 1]})"), {2, 6, 11, 12},
         {2, 6, 6, 6}, 6 * 9 + 6},
        {depthwise_graph({1, 5, 9, 8}, 5, false, R"({"pads": [2, 2, 2, 2]})"), {1, 5, 9, 8}, {1, 5, 9, 8}, 5 * 25},
        {resize_graph({3, 2, 5, 3}, "[1, 1, 3, 3]"), {3, 2, 5, 3}, {3, 2, 15, 9}, 0},
    };
    auto product = [](const std::vector<uint64_t>& s) { return s[0] * s[1] * s[2] * s[3]; };
    for (const char* name : {"minimal", "edge", "t64"}) {
        const hw::Config config = test::config(name);
        for (size_t i = 0; i < cases.size(); ++i) {
            SCOPED_TRACE(std::string(name) + " case " + std::to_string(i));
            const Case& c = cases[i];
            const Program p = compile(parse_graph(c.text, "t.json"), config);
            ASSERT_EQ(p.kernels.size(), 1u);
            EXPECT_EQ(p.graph.tensor(*p.graph.find_tensor("y")).shape, c.y);
            // A row tile of whole planes: the kernel's rows are the N C planes.
            EXPECT_EQ(kernel_dims(p.graph, p.kernels[0].op).m, c.x[0] * c.x[1]);
            EXPECT_EQ(p.hints.dram_read_bytes, 4 * (product(c.x) + p.tasks.size() * c.per_task));
            EXPECT_EQ(p.hints.dram_write_bytes, 4 * product(c.y));
            test::expect_consistent(p, config);
        }
    }
}

// Per task the weight and bias once, then per row tile of planes LOAD, MOVE, VECTOR, MOVE,
// STORE; the planes move as their tensors' view rows (H rows of W per plane in, OH of OW out).
TEST(WindowLowering, ATaskStreamsWholePlanesThroughL2) {
    const hw::Config edge = test::config("edge");
    const Program p = compile(parse_graph(depthwise_graph({3, 4, 9, 7}, 3, true, R"({"pads": [1, 1, 1, 1]})"), "t.json"), edge);
    const uint64_t tm = p.kernels[0].tile.tm;
    std::vector<std::string> first_task;
    for_each_op(p, [&](const DfxOp& op) {
        if (op.task == 0) first_task.push_back(to_string(op.kind));
        if (op.kind == DfxOpKind::Load && op.tensor == *p.graph.find_tensor("x")) {
            EXPECT_EQ(op.row % 9, 0u) << "a tile starts at a plane";
            EXPECT_EQ(op.cols, 7u);
            EXPECT_LE(op.rows, tm * 9);
        }
        if (op.kind == DfxOpKind::Store) {
            EXPECT_EQ(op.cols, 7u);
        }
        if (op.kind == DfxOpKind::Vector) {
            EXPECT_EQ(op.n, 63u);
        }
    });
    std::vector<std::string> expected = {"LOAD", "MOVE", "LOAD", "MOVE"};  // weight, bias
    for (uint32_t i = p.tasks[0].r0; i < p.tasks[0].r1; ++i)
        for (const char* kind : {"LOAD", "MOVE", "VECTOR", "MOVE", "STORE"}) expected.push_back(kind);
    EXPECT_EQ(first_task, expected);
    // The bound command: planes contiguous in L2, the tile's first plane for the channels.
    const BoundProgram b = bind(p, edge);
    for (const BoundOp& op : b.ops) {
        if (op.kind != BoundOp::Kind::Vector) continue;
        EXPECT_EQ(op.vector.function, hw::VectorFunction::DepthwiseConv);
        EXPECT_EQ(op.vector.a.ld, 63u);
        EXPECT_EQ(op.vector.y.ld, 63u);
        EXPECT_EQ(op.vector.window.channels, 4u);
        EXPECT_EQ(op.vector.window.first_plane % tm, 0u);
        EXPECT_EQ(hw::vector_command_problem(op.vector), "");
    }
}

// A chain of window ops: each reads what the previous stored, in its own 2-D view.
TEST(WindowLowering, AChainOfWindowOpsWaitsForItsProducers) {
    const std::string text = R"({"tensors": [{"name": "x", "shape": [3, 4, 12, 10], "role": "input"},
        {"name": "w", "shape": [4, 1, 3, 3], "role": "constant"}, {"name": "h"}, {"name": "p"}, {"name": "y"}],
        "ops": [{"op": "depthwise_conv", "name": "dw", "inputs": ["x", "w"], "outputs": ["h"],
                 "attributes": {"pads": [1, 1, 1, 1]}},
                {"op": "MaxPool", "name": "mp", "inputs": ["h"], "outputs": ["p"],
                 "attributes": {"kernel_shape": [2, 2], "strides": [2, 2]}},
                {"op": "Relu", "name": "r", "inputs": ["p"], "outputs": ["y"]}]})";
    for (const char* name : {"minimal", "t64"}) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        const Program p = compile(parse_graph(text, "t.json"), config);
        ASSERT_EQ(p.kernels.size(), 3u);
        for (uint32_t t = 0; t < p.tasks.size(); ++t)
            if (p.tasks[t].kernel > 0) {
                EXPECT_FALSE(producer_tasks(p, t).empty()) << t;
            }
        test::expect_consistent(p, config);
    }
}

// GlobalAveragePool: a view [N, C, H W], ReduceMean over the last axis, a view back; x read
// once, one value per plane written.
TEST(WindowLowering, GlobalAveragePoolIsAReduceMeanOverEachPlane) {
    const hw::Config t64 = test::config("t64");
    const Program p = compile(parse_graph(window_graph("GlobalAveragePool", {3, 5, 7, 9}, "{}"), "t.json"), t64);
    std::vector<std::string> kinds;
    for (const Op& op : p.graph.ops()) kinds.push_back(op.kind);
    EXPECT_EQ(kinds, (std::vector<std::string>{"Reshape", "ReduceMean", "Reshape"}));
    EXPECT_EQ(p.graph.tensor(*p.graph.find_tensor("y")).shape, (std::vector<uint64_t>{3, 5, 1, 1}));
    EXPECT_EQ(p.hints.dram_read_bytes, 4u * 3 * 5 * 7 * 9);
    EXPECT_EQ(p.hints.dram_write_bytes, 4u * 3 * 5);
    test::expect_consistent(p, t64);
}

// BatchNormalization: s = scale / sqrt(var + epsilon) and t = B - mean s over [C] on the
// engine (five [C] vector ops, epsilon an inline constant), then a 1 x 1 depthwise_conv of X
// with weight s and bias t. Each [C] op reads its [C] inputs (a scalar epsilon once per task)
// and writes [C]; the depthwise_conv reads X once and s, t once per task.
TEST(WindowLowering, BatchNormalizationIsAPerChannelScaleAndShiftOnTheEngine) {
    const std::string text = R"({"tensors": [{"name": "x", "shape": [3, 6, 5, 7], "role": "input"},
        {"name": "scale", "shape": [6], "role": "constant"}, {"name": "bias", "shape": [6], "role": "constant"},
        {"name": "mean", "shape": [6], "role": "constant"}, {"name": "var", "shape": [6], "role": "constant"},
        {"name": "y"}], "ops": [{"op": "BatchNormalization", "name": "bn",
        "inputs": ["x", "scale", "bias", "mean", "var"], "outputs": ["y"], "attributes": {"epsilon": 0.001}}]})";
    for (const char* name : {"minimal", "t64"}) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        const Program p = compile(parse_graph(text, "t.json"), config);
        std::vector<std::string> kinds;
        for (const Kernel& k : p.kernels) kinds.push_back(p.graph.ops()[k.op].kind);
        EXPECT_EQ(kinds, (std::vector<std::string>{"Add", "Sqrt", "Div", "Mul", "Sub", "depthwise_conv"}));
        const uint64_t c = 6, x = 3 * 6 * 5 * 7;
        const uint64_t read = 4 * (c + tasks_of(p, 0) + c + 2 * c + 2 * c + 2 * c + x + tasks_of(p, 5) * 2 * c);
        EXPECT_EQ(p.hints.dram_read_bytes, read);
        EXPECT_EQ(p.hints.dram_write_bytes, 4 * (5 * c + x));
        test::expect_consistent(p, config);
    }
}

// The tiler's estimate of a depthwise_conv on the vector engine: the engine's formula over
// the busiest compute tile's row tiles.
TEST(WindowLowering, DepthwiseEstimateIsTheEngineFormulaOnTheBusiestTile) {
    const hw::Config t64 = test::config("t64");
    const uint64_t lanes = t64.vector.lanes, fill = t64.vector.latency_cycles;
    // MobileNetV2's first depthwise layer: 32 planes of 112 x 112, 3 x 3, pad 1: a plane per
    // compute tile (32 < 64 tiles), 112 x 112 outputs in lane groups, 9 taps each.
    EXPECT_DOUBLE_EQ(depthwise_conv_vector_cycles(t64, {1, 32, 112, 112}, 3, 3, {1, 1, 1, 1}, {1, 1}, {1, 1}, true),
                     double(fill + (112 * 112 + lanes - 1) / lanes * 9));
    // Stride 2 halves each side of the output.
    EXPECT_DOUBLE_EQ(depthwise_conv_vector_cycles(t64, {1, 32, 112, 112}, 3, 3, {0, 0, 1, 1}, {2, 2}, {1, 1}, false),
                     double(fill + (56 * 56 + lanes - 1) / lanes * 9));
    // What the tiler chose for the same op in a graph.
    const Program p = compile(parse_graph(depthwise_graph({1, 32, 112, 112}, 3, true, R"({"pads": [1, 1, 1, 1]})"), "t.json"), t64);
    EXPECT_DOUBLE_EQ(double(p.kernels[0].hints.estimated_cycles),
                     depthwise_conv_vector_cycles(t64, {1, 32, 112, 112}, 3, 3, {1, 1, 1, 1}, {1, 1}, {1, 1}, true));
}

TEST(WindowLowering, BadInputIsOneLineNamingTheOpTheAttributeAndTheNumbers) {
    const std::vector<uint64_t> x = {1, 2, 6, 6};
    struct Case {
        std::string text, expected;
    };
    const std::vector<Case> cases = {
        {window_graph("MaxPool", x, R"({"kernel_shape": [9, 3]})"),
         "kernel_shape[0] = 9 (dilated: 9) is larger than the padded input's axis 2 (6 + pads 0 + 0 = 6)"},
        {window_graph("MaxPool", x, R"({"kernel_shape": [3, 3], "pads": [0, -1, 0, 0]})"),
         "attribute 'pads' = [0, -1, 0, 0] has a negative pad -1 at 1"},
        {window_graph("MaxPool", x, R"({"kernel_shape": [3, 3], "pads": [1, 1]})"),
         "attribute 'pads' = [1, 1] has 2 values, expected 4 (2-D NCHW)"},
        {window_graph("MaxPool", x, R"({"kernel_shape": [2, 2], "pads": [2, 0, 0, 0]})"),
         "attribute 'pads' = [2, 0, 0, 0]: a pad of axis 2 is not smaller than the kernel's 2 (windows entirely in the padding)"},
        {window_graph("MaxPool", x, R"({"kernel_shape": [3, 3], "strides": [0, 1]})"),
         "attribute 'strides' = [0, 1] has 0 at 0 (each must be at least 1)"},
        {window_graph("MaxPool", x, R"({"kernel_shape": [3, 3], "storage_order": 1})"),
         "attribute 'storage_order' = 1 not supported (only 0)"},
        {window_graph("AveragePool", x, "{}"), "attribute 'kernel_shape' is required"},
        {window_graph("AveragePool", x, R"({"kernel_shape": [3, 3], "auto_pad": "SAME"})"),
         "attribute 'auto_pad' = 'SAME' is not NOTSET, VALID, SAME_UPPER or SAME_LOWER"},
        {window_graph("MaxPool", {2, 6, 6}, R"({"kernel_shape": [3, 3]})"), "input 'X' ('x', [2, 6, 6]) has rank 3"},
        {depthwise_graph({1, 3, 6, 6}, 3, false, R"({"kernel_shape": [5, 5]})"),
         "attribute 'kernel_shape' = [5, 5] is not W's [3, 3]"},
        {window_graph("depthwise_conv", x, "{}", R"({"name": "w", "shape": [3, 1, 3, 3], "role": "constant"},)", R"(, "w")"),
         "input 'W' ('w', [3, 1, 3, 3]) is not [C, 1, kH, kW] with C = 2 (X's channels)"},
        {depthwise_graph({1, 3, 6, 6}, 3, false, R"({"group": 1})"),
         "attribute 'group' = 1 is not X's channels 3 (depthwise)"},
        {window_graph("BatchNormalization", x, R"({"training_mode": 1})",
                      R"({"name": "s", "shape": [2], "role": "constant"},)", R"(, "s", "s", "s", "s")"),
         "attribute 'training_mode' = 1 not supported (only inference, 0)"},
        {window_graph("BatchNormalization", x, "{}",
                      R"({"name": "s", "shape": [2], "role": "constant"}, {"name": "m", "shape": [3], "role": "constant"},)",
                      R"(, "s", "s", "m", "s")"),
         "input 'input_mean' ('m', [3]) is not [2] (X's channels)"},
        {resize_graph(x, "[1, 1, 2, 2]", R"({"mode": "linear"})"), "attribute 'mode' = 'linear' not supported (only 'nearest')"},
    };
    for (const Case& c : cases) {
        const std::string message = test::error_of([&] { parse_graph(c.text, "t.json"); });
        EXPECT_NE(message.find(c.expected), std::string::npos) << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
    // MaxPool's Indices output.
    const std::string indices = R"({"tensors": [{"name": "x", "shape": [1, 2, 6, 6], "role": "input"}, {"name": "y"},
        {"name": "i"}], "ops": [{"op": "MaxPool", "name": "v", "inputs": ["x"], "outputs": ["y", "i"],
        "attributes": {"kernel_shape": [2, 2]}}]})";
    EXPECT_NE(test::error_of([&] { parse_graph(indices, "t.json"); }).find("output 'Indices' not yet supported"),
              std::string::npos);
}

// Resize lowers for integer scales of H and W where output i reads input floor(i / scale);
// the rest is refused at compile time with the reason.
TEST(WindowLowering, ResizeThatDoesNotLowerSaysWhy) {
    const hw::Config edge = test::config("edge");
    const std::vector<uint64_t> x = {1, 2, 4, 6};
    struct Case {
        std::string text, expected;
    };
    const std::vector<Case> cases = {
        {resize_graph(x, "[1, 1, 1.5, 1.5]"),
         "Resize (v: scale 1.5 of axis 2 (4 to 6) not yet supported (only integer scales of H and W, 1 of N and C))"},
        {resize_graph(x, "[1, 2, 2, 2]"),
         "Resize (v: scale 2 of axis 1 (2 to 4) not yet supported (only integer scales of H and W, 1 of N and C))"},
        {resize_graph(x, "[1, 1, 3, 3]", R"({"coordinate_transformation_mode": "asymmetric"})"),
         "Resize (v: coordinate_transformation_mode = 'asymmetric' with nearest_mode = 'round_prefer_floor' maps "
         "output index 2 of axis 2 to input index 1 at scale 3 (only the modes where output i reads input floor(i / "
         "scale) lower))"},
    };
    for (const Case& c : cases) {
        const std::string message = test::error_of([&] { compile(parse_graph(c.text, "t.json"), edge); });
        EXPECT_NE(message.find(c.expected), std::string::npos) << message;
    }
    // x2 asymmetric with round_prefer_floor does read floor(i / 2): it lowers.
    const Program p = compile(parse_graph(resize_graph(x, "[1, 1, 2, 2]", R"({"coordinate_transformation_mode": "asymmetric"})"), "t.json"), edge);
    test::expect_consistent(p, edge);
}

TEST(WindowLowering, APlaneTooLargeForATileIsRefusedWithTheNumbers) {
    const hw::Config minimal = test::config("minimal");
    const std::string message = test::error_of([&] {
        compile(parse_graph(window_graph("MaxPool", {1, 1, 1000, 1000}, R"({"kernel_shape": [2, 2], "strides": [2, 2]})"),
                            "t.json"),
                minimal);
    });
    EXPECT_NE(message.find("op 'v' (MaxPool): a plane of 1000 x 1000 of tensor 'x' in and 500 x 500 out needs"), std::string::npos)
        << message;
    EXPECT_NE(message.find("(planes that large are not yet supported)"), std::string::npos) << message;
}

}  // namespace
}  // namespace kpu::compiler
