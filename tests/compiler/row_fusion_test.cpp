// fuse-rows (compiler/passes/fuse_rows.h): which chains of vector ops become one vector_chain,
// its stream per row tile (the intermediates on L2), its DRAM bytes against the bound stream,
// the closed form of docs/compiler.md and -O0's, the engine cycles, the pass switch, re-blocking
// onto a smaller config and a hand-written chain's bad attributes.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "compiler/binder.h"
#include "compiler/passes/fuse_rows.h"
#include "compiler/reblock.h"
#include "compiler/replay.h"
#include "hardware/vector_timing.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

/// A graph of inputs `inputs` (name, shape) and ops (kind, name, inputs, output, attributes):
/// the last op's output is the graph's output, the others' intermediates.
struct OpText {
    std::string kind, name;
    std::vector<std::string> inputs;
    std::string output, attributes = "{}";
};
std::string graph_json(const std::vector<std::pair<std::string, std::string>>& inputs, const std::vector<OpText>& ops,
                       const std::vector<std::string>& outputs = {}) {
    std::string t, o;
    for (const auto& [name, shape] : inputs)
        t += R"({"name": ")" + name + R"(", "shape": )" + shape + R"(, "role": "input"},)";
    for (size_t i = 0; i < ops.size(); ++i) {
        const bool out = i + 1 == ops.size() ||
                         std::find(outputs.begin(), outputs.end(), ops[i].output) != outputs.end();
        t += R"({"name": ")" + ops[i].output + (out ? R"(", "role": "output"})" : R"("})") +
             (i + 1 < ops.size() ? "," : "");
        std::string ins;
        for (const std::string& in : ops[i].inputs) ins += (ins.empty() ? "\"" : ", \"") + in + "\"";
        o += R"({"op": ")" + ops[i].kind + R"(", "name": ")" + ops[i].name + R"(", "inputs": [)" + ins +
             R"(], "outputs": [")" + ops[i].output + R"("], "attributes": )" + ops[i].attributes + "}" +
             (i + 1 < ops.size() ? "," : "");
    }
    return R"({"tensors": [)" + t + R"(], "ops": [)" + o + "]}";
}

const std::string kX = "[3, 41, 37]";  // 123 rows of 37: ragged against every row tile

/// The cases of issue 33: post-LN BERT, a scaled and masked softmax, an affine LayerNorm
/// then Gelu, and RMSNorm then Sigmoid over ragged rows.
struct Case {
    std::string name, json;
    size_t steps;
    uint64_t row_inputs, vector_elements;  // per row tile / per task, elements
};
std::vector<Case> cases() {
    const uint64_t cols = 37;
    return {
        {"add_layernorm",
         graph_json({{"x", kX}, {"r", kX}, {"g", "[37]"}, {"b", "[37]"}},
                    {{"Add", "add", {"x", "r"}, "s"}, {"LayerNormalization", "ln", {"s", "g", "b"}, "y"}}),
         2, 1, 2 * cols},
        {"mul_add_softmax",
         graph_json({{"x", kX}, {"scale", "[1]"}, {"mask", "[37]"}},
                    {{"Mul", "mul", {"x", "scale"}, "s"}, {"Add", "add", {"mask", "s"}, "m"},
                     {"Softmax", "sm", {"m"}, "y"}}),
         3, 0, 1 + cols},
        {"layernorm_mul_add_gelu",
         graph_json({{"x", kX}, {"one", "[37]"}, {"g", "[37]"}, {"b", "[37]"}},
                    {{"LayerNormalization", "ln", {"x", "one"}, "n"}, {"Mul", "mul", {"n", "g"}, "s"},
                     {"Add", "add", {"s", "b"}, "t"}, {"Gelu", "gelu", {"t"}, "y", R"({"approximate": "tanh"})"}}),
         4, 0, 3 * cols},
        {"rmsnorm_sigmoid_residual",
         graph_json({{"x", kX}, {"w", "[37]"}, {"r", kX}},
                    {{"RMSNormalization", "rms", {"x", "w"}, "n"}, {"Sigmoid", "sig", {"n"}, "s"},
                     {"Mul", "mul", {"s", "r"}, "y"}}),
         3, 1, cols},
    };
}

CompileOptions at_level(int level) {
    CompileOptions o;
    o.passes.level = level;
    return o;
}

// The chain reads x and its row inputs once, each vector once per task, and writes y once;
// against -O0 it saves exactly the intermediates' writes and reads (and the vectors' loads of
// the ops' other tasks), and the bound stream moves what the hints say.
TEST(RowFusion, HintsEqualTheBoundStreamTheClosedFormAndO0LessTheIntermediates) {
    const uint64_t rows = 123, cols = 37;
    for (const char* config_name : {"minimal", "edge", "t64"}) {
        const hw::Config config = test::config(config_name);
        for (const Case& c : cases()) {
            SCOPED_TRACE(std::string(config_name) + " " + c.name);
            const Graph g = parse_graph(c.json, "t.json");
            const Program p = compile(g, config);
            ASSERT_EQ(p.graph.ops().size(), 1u);
            EXPECT_EQ(p.graph.ops()[0].kind, "vector_chain");
            ASSERT_EQ(vector_operands(p.graph, 0).chain.size(), c.steps);
            const uint64_t tasks = p.tasks.size();
            EXPECT_EQ(p.hints.dram_read_bytes, 4 * (rows * cols * (1 + c.row_inputs) + tasks * c.vector_elements));
            EXPECT_EQ(p.hints.dram_write_bytes, 4 * rows * cols);
            test::expect_consistent(p, config);
            // -O0: every op its own kernel; its vectors once per task of that kernel.
            const Program o0 = compile(g, config, at_level(0));
            ASSERT_EQ(o0.kernels.size(), c.steps);
            uint64_t o0_vectors = 0;
            for (uint32_t k = 0; k < o0.kernels.size(); ++k) {
                uint64_t per_task = 0, kernel_tasks = 0;
                for (uint32_t t : o0.graph.ops()[o0.kernels[k].op].inputs)
                    if (o0.graph.tensor(t).elements() < rows * cols) per_task += o0.graph.tensor(t).elements();
                for (const Task& t : o0.tasks) kernel_tasks += t.kernel == k;
                o0_vectors += per_task * kernel_tasks;
            }
            const uint64_t intermediates = (c.steps - 1) * rows * cols;
            EXPECT_EQ(o0.hints.dram_read_bytes - p.hints.dram_read_bytes,
                      4 * (intermediates + o0_vectors - tasks * c.vector_elements));
            EXPECT_EQ(o0.hints.dram_write_bytes - p.hints.dram_write_bytes, 4 * intermediates);
        }
    }
}

// Per row tile: x (and a row input) in through L3 to L2, one VECTOR per step reading the
// previous one's result from L2 (A2 and C2 by turns), the last result out; the vectors once.
TEST(RowFusion, ARowTileRunsEveryStepOnL2AndGoesOutOnce) {
    const Case c = cases()[0];  // Add, then LayerNormalization with weight and bias
    const Program p = compile(parse_graph(c.json, "t.json"), test::config("edge"));
    std::vector<std::string> first_task;
    std::vector<uint32_t> steps;
    std::vector<Buffer> reads, writes;
    for_each_op(p, [&](const DfxOp& op) {
        if (op.task != 0) return;
        first_task.push_back(to_string(op.kind));
        if (op.kind != DfxOpKind::Vector) return;
        steps.push_back(op.step);
        reads.push_back(op.a.buffer), writes.push_back(op.c.buffer);
        EXPECT_EQ(level_of(op.a.buffer), hw::Level::L2);
        EXPECT_EQ(level_of(op.c.buffer), hw::Level::L2);
    });
    std::vector<std::string> expected = {"LOAD", "MOVE", "LOAD", "MOVE"};  // weight, bias
    std::vector<uint32_t> expected_steps;
    for (uint32_t i = p.tasks[0].r0; i < p.tasks[0].r1; ++i) {
        for (const char* kind : {"LOAD", "MOVE", "LOAD", "MOVE", "VECTOR", "VECTOR", "MOVE", "STORE"})
            expected.push_back(kind);
        expected_steps.insert(expected_steps.end(), {0, 1});
    }
    EXPECT_EQ(first_task, expected);
    EXPECT_EQ(steps, expected_steps);
    for (size_t i = 0; i < reads.size(); i += 2) {
        EXPECT_EQ(reads[i], Buffer::A2);
        EXPECT_EQ(writes[i], Buffer::C2);
        EXPECT_EQ(reads[i + 1], Buffer::C2);
        EXPECT_EQ(writes[i + 1], Buffer::A2);
    }
}

// The bound program runs each step's own command (the unfused op's, with its operands on
// chip), and the tiler's estimate is the sum of their engine cycles on the busiest tile.
TEST(RowFusion, EachStepBindsTheUnfusedCommandAndTheEstimateSumsTheirCycles) {
    for (const char* name : {"edge", "t64"}) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        const Case c = cases()[2];  // LayerNormalization, Mul, Add, Gelu
        const Program p = compile(parse_graph(c.json, "t.json"), config);
        const BoundProgram b = bind(p, config);
        std::vector<uint64_t> per_tile(config.compute_tiles, 0);
        std::vector<hw::VectorFunction> functions;
        for (const BoundOp& op : b.ops) {
            if (op.kind != BoundOp::Kind::Vector) continue;
            per_tile[op.tile] += hw::vector_cycles(op.vector, config.vector);
            if (functions.size() < 4) functions.push_back(op.vector.function);
        }
        EXPECT_EQ(functions, (std::vector<hw::VectorFunction>{hw::VectorFunction::LayerNorm, hw::VectorFunction::Mul,
                                                               hw::VectorFunction::Add, hw::VectorFunction::GeluTanh}));
        const uint64_t busiest = *std::max_element(per_tile.begin(), per_tile.end());
        EXPECT_EQ(p.hints.estimated_cycles, busiest);
        EXPECT_GT(replay_cycles(b, config), double(busiest));
    }
}

// A link needs an intermediate that only the next op reads, that is no graph output, as the
// next op's streamed operand; a chain needs a row op; a column operand breaks the chain.
TEST(RowFusion, OnlyLinksOfOneReaderAndChainsWithARowOpFuse) {
    const hw::Config edge = test::config("edge");
    const auto kinds = [&](const std::string& json) {
        std::vector<std::string> out;
        const Program p = compile(parse_graph(json, "t.json"), edge);
        for (const Op& op : p.graph.ops()) out.push_back(op.kind);
        return out;
    };
    // s is read by LayerNorm and by the final Add: Add, LayerNorm stay apart; LayerNorm + Add fuse.
    EXPECT_EQ(kinds(graph_json({{"x", kX}, {"r", kX}, {"g", "[37]"}}, {{"Add", "add", {"x", "r"}, "s"},
                                                        {"LayerNormalization", "ln", {"s", "g"}, "n"},
                                                        {"Add", "res", {"n", "s"}, "y"}})),
              (std::vector<std::string>{"Add", "vector_chain"}));
    // s is a graph output: it must reach DRAM.
    EXPECT_EQ(kinds(graph_json({{"x", kX}, {"r", kX}},
                               {{"Add", "add", {"x", "r"}, "s"}, {"Softmax", "sm", {"s"}, "y"}}, {"s"})),
              (std::vector<std::string>{"Add", "Softmax"}));
    // No row op: elementwise ops alone are left as they are.
    EXPECT_EQ(kinds(graph_json({{"x", kX}, {"r", kX}}, {{"Add", "add", {"x", "r"}, "s"}, {"Relu", "relu", {"s"}, "y"}})),
              (std::vector<std::string>{"Add", "Relu"}));
    // Sub(r, s): the intermediate is the second operand, not the streamed one.
    EXPECT_EQ(kinds(graph_json({{"x", kX}, {"r", kX}}, {{"Softmax", "sm", {"x"}, "s"}, {"Sub", "sub", {"r", "s"}, "y"}})),
              (std::vector<std::string>{"Softmax", "Sub"}));
    // A column operand [3, 41, 1] is read row tile by row tile in another width: not chained.
    EXPECT_EQ(kinds(graph_json({{"x", kX}, {"c", "[3, 41, 1]"}},
                               {{"Mul", "mul", {"x", "c"}, "s"}, {"Softmax", "sm", {"s"}, "y"}})),
              (std::vector<std::string>{"Mul", "Softmax"}));
}

// --disable-pass fuse-rows (and -O1, where it does not run) keeps -O0's ops, kernels and
// tasks; fused_with names the absorbed ops in chain order, the chain takes the row op's name.
TEST(RowFusion, TheSwitchRestoresTheUnfusedProgramAndFusedWithNamesTheOps) {
    const hw::Config edge = test::config("edge");
    const Case c = cases()[2];
    const Graph g = parse_graph(c.json, "t.json");
    CompileOptions off;
    off.passes.disabled = {Pass::FuseRows};
    const Program without = compile(g, edge, off), o0 = compile(g, edge, at_level(0)), o1 = compile(g, edge, at_level(1));
    EXPECT_EQ(without.graph, o0.graph);
    EXPECT_EQ(without.kernels, o0.kernels);
    EXPECT_EQ(o1.graph, o0.graph);
    EXPECT_EQ(std::count(without.passes.begin(), without.passes.end(), Pass::FuseRows), 0);
    const Program p = compile(g, edge);
    EXPECT_EQ(std::count(p.passes.begin(), p.passes.end(), Pass::FuseRows), 1);
    ASSERT_EQ(p.graph.ops().size(), 1u);
    EXPECT_EQ(p.graph.ops()[0].name, "ln");
    EXPECT_EQ(p.graph.ops()[0].fused_with, (std::vector<std::string>{"mul", "add", "gelu"}));
    // The .kpu round trip keeps the chain (expect_consistent reads it back).
    test::expect_consistent(p, edge);
}

// A chain compiled for edge, its row tiles filling edge's L2, is re-blocked into smaller row
// tiles for minimal and stays consistent there.
TEST(RowFusion, AChainIsReblockedOntoASmallerConfig) {
    const std::string json = graph_json({{"x", "[512, 2048]"}, {"r", "[512, 2048]"}, {"g", "[2048]"}},
                                        {{"Add", "add", {"x", "r"}, "s"}, {"RMSNormalization", "rms", {"s", "g"}, "y"}});
    const Program p = compile(parse_graph(json, "t.json"), test::config("edge"));
    ASSERT_EQ(p.graph.ops()[0].kind, "vector_chain");
    const hw::Config& minimal = test::config("minimal");
    ReblockReport report;
    const Program r = reblock(p, minimal, &report);
    ASSERT_EQ(report.kernels.size(), 1u);
    EXPECT_EQ(std::string(report.kernels[0].op_class), "vector");
    EXPECT_LT(report.kernels[0].to.tm, report.kernels[0].from.tm);
    EXPECT_TRUE(fits_config(r, minimal));
    test::expect_consistent(r, minimal);
}

// A hand-written vector_chain whose attributes do not describe a chain is refused with the
// op and the attribute.
TEST(RowFusion, ABadHandWrittenChainIsRefusedNamingTheAttribute) {
    const auto chain = [](const std::string& attributes) {
        return R"({"tensors": [{"name": "x", "shape": [4, 8], "role": "input"}, {"name": "y", "role": "output"}],
                   "ops": [{"op": "vector_chain", "name": "vc", "inputs": ["x"], "outputs": ["y"], "attributes": )" +
               attributes + "}]}";
    };
    const std::string good = R"({"kinds": "Relu,Softmax", "arity": [1, 1], "sources": [0, -1],
                                 "epsilon": [0, 0], "approximate": ","})";
    const Program p = compile(parse_graph(chain(good), "t.json"), test::config("edge"));
    EXPECT_EQ(vector_operands(p.graph, 0).chain.size(), 2u);
    const std::pair<const char*, const char*> bad[] = {
        {R"({"kinds": "Relu,Softmax", "arity": [1], "sources": [0, -1], "epsilon": [0, 0], "approximate": ","})",
         "op 'vc' (vector_chain): attribute 'arity' has 1 entries for 2 steps"},
        {R"({"kinds": "Relu,Softmax", "arity": [1, 1], "sources": [0, 0], "epsilon": [0, 0], "approximate": ","})",
         "step 1 (Softmax) does not read the previous step's result"},
        {R"({"kinds": "Relu,ReduceSum", "arity": [1, 1], "sources": [0, -1], "epsilon": [0, 0], "approximate": ","})",
         "step 1 (ReduceSum) is not a kind a chain holds"},
    };
    for (const auto& [attributes, message] : bad)
        EXPECT_NE(test::error_of([&] { parse_graph(chain(attributes), "t.json"); }).find(message), std::string::npos)
            << attributes;
}

}  // namespace
}  // namespace kpu::compiler
